import Foundation
import Testing
import TaskyardDomain

/// Cron as cron runs it: fields, names, steps, the day-of-month/day-of-week rule, aliases, `@every`, and
/// wall-clock time across daylight saving changes in two time zones.
@Suite("Cron schedules")
struct CronScheduleTests {
    func at(_ text: String) -> Date { RFC3339.parse(text)! }
    /// To the second, as the tests write times.
    func string(_ date: Date?) -> String { date.map { String(RFC3339.format($0).prefix(19)) + "Z" } ?? "never" }

    func slots(_ expression: String, zone: String = "UTC", after: String, count: Int) throws -> [String] {
        let cron = try CronSchedule(expression, timeZone: zone)
        var cursor = at(after), found: [String] = []
        for _ in 0..<count {
            guard let next = cron.next(after: cursor) else { break }
            found.append(string(next))
            cursor = next
        }
        return found
    }

    @Test("fields, lists, ranges, steps and names")
    func fields() throws {
        #expect(try slots("*/15 * * * *", after: "2026-12-02T10:07:00Z", count: 3)
                == ["2026-12-02T10:15:00Z", "2026-12-02T10:30:00Z", "2026-12-02T10:45:00Z"])
        #expect(try slots("0 9-17/4 * * MON-FRI", after: "2026-12-04T16:00:00Z", count: 3)  // a Friday
                == ["2026-12-04T17:00:00Z", "2026-12-07T09:00:00Z", "2026-12-07T13:00:00Z"])
        #expect(try slots("30 2 1,15 jan,Jul *", after: "2026-01-10T00:00:00Z", count: 3)
                == ["2026-01-15T02:30:00Z", "2026-07-01T02:30:00Z", "2026-07-15T02:30:00Z"])
        #expect(try slots("0 0 * * 7", after: "2026-12-02T00:00:00Z", count: 1) == ["2026-12-06T00:00:00Z"], "7 is Sunday too")
        #expect(try slots("5/20 * * * *", after: "2026-12-02T10:00:00Z", count: 3)
                == ["2026-12-02T10:05:00Z", "2026-12-02T10:25:00Z", "2026-12-02T10:45:00Z"])
        // Both days restricted: either matches (the 13th, and every Friday).
        #expect(try slots("0 0 13 * 5", after: "2026-11-01T00:00:00Z", count: 4)
                == ["2026-11-06T00:00:00Z", "2026-11-13T00:00:00Z", "2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z"])
        #expect(try slots("0 12 29 2 *", after: "2026-03-01T00:00:00Z", count: 1) == ["2028-02-29T12:00:00Z"])
    }

    @Test("aliases and @every")
    func aliases() throws {
        #expect(try slots("@hourly", after: "2026-12-02T10:07:00Z", count: 2) == ["2026-12-02T11:00:00Z", "2026-12-02T12:00:00Z"])
        #expect(try slots("@daily", after: "2026-12-02T10:07:00Z", count: 1) == ["2026-12-03T00:00:00Z"])
        #expect(try slots("@weekly", after: "2026-12-02T10:07:00Z", count: 1) == ["2026-12-06T00:00:00Z"])
        #expect(try slots("@every 30s", after: "2026-12-02T10:07:10Z", count: 3)
                == ["2026-12-02T10:07:30Z", "2026-12-02T10:08:00Z", "2026-12-02T10:08:30Z"])
        #expect(try slots("@every 1h30m", after: "2026-12-02T10:07:10Z", count: 1) == ["2026-12-02T10:30:00Z"], "multiples since 1970")
    }

    @Test("what is no schedule is a 422 naming cron or timezone")
    func refusals() {
        for bad in ["", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *",
                    "5-1 * * * *", "a * * * *", "@fortnightly", "@every", "@every 0s", "@every 10x", "@every 200h", "0 0 30 2 *",
                    "1,,2 * * * *"] {
            #expect(throws: TaskyardError.self, "\(bad)") { try CronSchedule(bad) }
            #expect((try? CronSchedule(bad)) == nil)
            do { _ = try CronSchedule(bad) } catch { #expect(error.field == "cron", "\(bad)") }
        }
        do { _ = try CronSchedule("* * * * *", timeZone: "Mars/Olympus") } catch { #expect(error.field == "timezone") }
    }

    @Test("a wall-clock time the clocks skip is skipped; one they repeat runs once (Berlin and New York)")
    func daylightSaving() throws {
        // Berlin springs forward 2026-03-29 02:00 → 03:00: 02:30 does not happen that day.
        #expect(try slots("30 2 * * *", zone: "Europe/Berlin", after: "2026-03-27T12:00:00Z", count: 3)
                == ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"])
        // Berlin falls back 2026-10-25 03:00 → 02:00: 02:30 happens twice, and runs the first time only.
        #expect(try slots("30 2 * * *", zone: "Europe/Berlin", after: "2026-10-24T12:00:00Z", count: 2)
                == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
        // Every 30 minutes through New York's fall back (2026-11-01 02:00 EDT → 01:00 EST): 01:00 and 01:30 once.
        #expect(try slots("*/30 * * * *", zone: "America/New_York", after: "2026-11-01T04:45:00Z", count: 4)
                == ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:30:00Z"])
        // New York springs forward 2026-03-08 02:00 → 03:00: 02:15 is skipped, 03:15 runs.
        #expect(try slots("15 2,3 * * *", zone: "America/New_York", after: "2026-03-08T05:00:00Z", count: 2)
                == ["2026-03-08T07:15:00Z", "2026-03-09T06:15:00Z"])
        // Hourly through Berlin's fall back runs at every instant the hour starts, the repeated hour once.
        #expect(try slots("0 * * * *", zone: "Europe/Berlin", after: "2026-10-24T23:30:00Z", count: 3)
                == ["2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"])
    }

    @Test("after downtime, catch_up decides: skip none but a slot due now, one (the latest), or all of them")
    func catchUp() throws {
        let cron = try CronSchedule("* * * * *")
        let now = at("2026-12-02T10:10:20Z")
        func schedule(_ mode: Schedule.CatchUp) -> Schedule {
            Schedule(clusterID: "c1", id: "s", cron: "* * * * *", timezone: "UTC", task: [:], catchUp: mode, paused: false,
                     nextRunAt: at("2026-12-02T10:00:00Z"), lastRunAt: nil, lastTaskID: nil, createdAt: now, updatedAt: now, revision: 0)
        }
        let all = schedule(.all).due(now: now, expression: cron)
        #expect(all.submit.map(string) == (0...10).map { String(format: "2026-12-02T10:%02d:00Z", $0) })
        #expect(string(all.next) == "2026-12-02T10:11:00Z")
        let one = schedule(.one).due(now: now, expression: cron)
        #expect(one.submit.map(string) == ["2026-12-02T10:10:00Z"] && string(one.next) == "2026-12-02T10:11:00Z")
        let skip = schedule(.skip).due(now: now, expression: cron)
        #expect(skip.submit.map(string) == ["2026-12-02T10:10:00Z"], "the current slot, 20 s late, still runs")
        let skipLater = schedule(.skip).due(now: at("2026-12-02T10:10:50Z").addingTimeInterval(30), expression: cron)
        #expect(skipLater.submit.map(string) == ["2026-12-02T10:11:00Z"])
        let hourly = try CronSchedule("0 * * * *")
        var missed = schedule(.skip)
        missed.nextRunAt = at("2026-12-02T08:00:00Z")
        #expect(missed.due(now: now, expression: hourly).submit.isEmpty, "10:00 is 10 minutes gone: skipped")
    }
}
