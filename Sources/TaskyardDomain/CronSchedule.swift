import Foundation

/// When a schedule is due: a standard five-field cron expression in a time zone, an `@hourly`-style alias,
/// or `@every <duration>`.
///
/// Cron fields: minute (0–59), hour (0–23), day of month (1–31), month (1–12 or JAN–DEC), day of week (0–7,
/// 0 and 7 both Sunday, or SUN–SAT); each `*`, a value, a range `a-b`, a list `a,b,c`, and a step `*/n` or
/// `a-b/n` (`a/n`: from a to the end). As in Vixie cron, when both the day of month and the day of week are
/// restricted, a day matching either is due. Times are wall-clock times in `timeZone`, and across daylight
/// saving changes as cron runs them: a wall-clock time that does not exist that day (clocks spring
/// forward past it) is skipped, and one that happens twice (clocks fall back) runs once, the first time.
///
/// `@every 30s` (units `s`, `m`, `h`, combined as `1h30m`; at least one second, at most a week) is due at
/// every multiple of its interval since 1970-01-01T00:00Z: the same instants whichever server computes
/// them, in no time zone.
public struct CronSchedule: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case fields(minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>,
                    anyDay: Bool, anyWeekday: Bool)
        case every(seconds: Int)
    }

    public let kind: Kind
    public let timeZone: TimeZone

    /// The longest search for the next slot: an expression no date in this many years matches (`30 0 30 2 *`)
    /// is refused when it is made.
    static let searchYears = 8

    public static let aliases = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    /// Parses `expression` in the zone named `timeZone` (an IANA name; `UTC` by default); 422 naming `field`
    /// (or `timezoneField`) for anything else.
    public init(_ expression: String, timeZone zoneName: String = "UTC", field: String = "cron",
                timezoneField: String = "timezone") throws(TaskyardError) {
        guard let zone = TimeZone(identifier: zoneName), !zoneName.isEmpty, zoneName.count <= 64 else {
            throw .invalid(timezoneField, "must be an IANA time zone name such as UTC or Europe/Berlin")
        }
        timeZone = zone
        let trimmed = expression.trimmingCharacters(in: .whitespaces)
        guard trimmed.count <= 200, !trimmed.isEmpty else { throw .invalid(field, "must be a cron expression of 1–200 characters") }
        if trimmed.lowercased().hasPrefix("@every ") {
            guard let seconds = Self.durationSeconds(String(trimmed.dropFirst(7)).trimmingCharacters(in: .whitespaces)),
                  (1...604_800).contains(seconds) else {
                throw .invalid(field, "@every takes a duration from 1s to 168h, such as 30s, 5m or 1h30m")
            }
            kind = .every(seconds: seconds)
            return
        }
        let text = Self.aliases[trimmed.lowercased()] ?? trimmed
        if text.hasPrefix("@") { throw .invalid(field, "\(trimmed) is no alias (@yearly, @monthly, @weekly, @daily, @hourly, @every <duration>)") }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard parts.count == 5 else { throw .invalid(field, "must have five fields (minute hour day-of-month month day-of-week)") }
        let months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        let weekdays = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
        let minute = try Self.field(parts[0], 0...59, names: [], what: "minute", field: field)
        let hour = try Self.field(parts[1], 0...23, names: [], what: "hour", field: field)
        let day = try Self.field(parts[2], 1...31, names: [], what: "day of month", field: field)
        let month = try Self.field(parts[3], 1...12, names: months, nameBase: 1, what: "month", field: field)
        var weekday = try Self.field(parts[4], 0...7, names: weekdays, what: "day of week", field: field)
        if weekday.remove(7) != nil { weekday.insert(0) }
        kind = .fields(minutes: minute, hours: hour, days: day, months: month, weekdays: weekday,
                       anyDay: parts[2].hasPrefix("*"), anyWeekday: parts[4].hasPrefix("*"))
        guard next(after: Date(timeIntervalSince1970: 0)) != nil || next(after: Date()) != nil else {
            throw .invalid(field, "matches no date: \(trimmed)")
        }
    }

    /// The first slot strictly after `date`; nil when none comes within `searchYears` years.
    public func next(after date: Date) -> Date? {
        switch kind {
        case .every(let seconds):
            let interval = Double(seconds)
            return Date(timeIntervalSince1970: (floor(date.timeIntervalSince1970 / interval) + 1) * interval)
        case .fields(let minutes, let hours, let days, let months, let weekdays, let anyDay, let anyWeekday):
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            // Walk wall-clock days from the wall-clock day of `date` (a day early: the repeated hour of a fall
            // back can put a later instant on an earlier wall-clock time).
            let wall = date.addingTimeInterval(Double(timeZone.secondsFromGMT(for: date)))
            var day = calendar.startOfDay(for: wall).addingTimeInterval(-86_400)
            let sortedHours = hours.sorted(), sortedMinutes = minutes.sorted()
            for _ in 0..<(Self.searchYears * 366 + 2) {
                defer { day = day.addingTimeInterval(86_400) }
                let parts = calendar.dateComponents([.month, .day, .weekday], from: day)
                guard let month = parts.month, let dayOfMonth = parts.day, let weekday = parts.weekday, months.contains(month) else { continue }
                let dayMatches = days.contains(dayOfMonth), weekdayMatches = weekdays.contains(weekday - 1)
                let due = anyDay || anyWeekday ? dayMatches && weekdayMatches : dayMatches || weekdayMatches
                guard due else { continue }
                for hour in sortedHours {
                    for minute in sortedMinutes {
                        let wallClock = day.addingTimeInterval(Double(hour * 3600 + minute * 60))
                        if let instant = firstInstant(ofWallClock: wallClock), instant > date { return instant }
                    }
                }
            }
            return nil
        }
    }

    /// The latest slot at or before `through`, `first` being one (at or before it).
    public func latestSlot(from first: Date, through: Date) -> Date {
        if case .every(let seconds) = kind {
            return max(first, Date(timeIntervalSince1970: floor(through.timeIntervalSince1970 / Double(seconds)) * Double(seconds)))
        }
        var latest = first
        while let next = next(after: latest), next <= through { latest = next }
        return latest
    }

    /// The slots in `(after, through]`, oldest first, at most `limit` of them.
    public func slots(after: Date, through: Date, limit: Int) -> [Date] {
        var slots: [Date] = []
        var cursor = after
        while slots.count < limit, let next = next(after: cursor), next <= through {
            slots.append(next)
            cursor = next
        }
        return slots
    }

    /// The instant a wall-clock time (given as if it were UTC) first happens in the zone; nil when the clocks
    /// skip it. Daylight-saving changes are months apart, so the offsets half a day either side are the only
    /// ones it can have.
    func firstInstant(ofWallClock wallClock: Date) -> Date? {
        let offsets = Set([timeZone.secondsFromGMT(for: wallClock.addingTimeInterval(-50_400)),
                           timeZone.secondsFromGMT(for: wallClock.addingTimeInterval(50_400))])
        return offsets.map { wallClock.addingTimeInterval(-Double($0)) }
            .filter { timeZone.secondsFromGMT(for: $0) == Int(wallClock.timeIntervalSince($0)) }
            .min()
    }

    static func durationSeconds(_ text: String) -> Int? {
        var total = 0, number = "", sawUnit = false
        for character in text.lowercased() {
            if character.isASCII, character.isNumber {
                number.append(character)
                guard number.count <= 7 else { return nil }
            } else {
                guard let value = Int(number) else { return nil }
                switch character {
                case "s": total += value
                case "m": total += value * 60
                case "h": total += value * 3600
                default: return nil
                }
                number = ""
                sawUnit = true
            }
        }
        return number.isEmpty && sawUnit ? total : nil
    }

    private static func field(_ text: String, _ range: ClosedRange<Int>, names: [String], nameBase: Int = 0,
                              what: String, field: String) throws(TaskyardError) -> Set<Int> {
        func value(_ token: Substring) throws(TaskyardError) -> Int {
            if let index = names.firstIndex(of: token.uppercased()) { return index + nameBase }
            guard token.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(token), range.contains(number) else {
                throw .invalid(field, "\(what) \(token) is out of range \(range.lowerBound)–\(range.upperBound)")
            }
            return number
        }
        var values = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2, let base = pieces.first, !base.isEmpty else { throw .invalid(field, "\(what) \(item) is not a cron field") }
            var step = 1
            if pieces.count == 2 {
                guard let parsed = Int(pieces[1]), parsed >= 1, parsed <= range.upperBound else {
                    throw .invalid(field, "\(what) step \(pieces[1]) must be a number from 1 to \(range.upperBound)")
                }
                step = parsed
            }
            let bounds: ClosedRange<Int>
            if base == "*" {
                bounds = range
            } else if let dash = base.firstIndex(of: "-") {
                let low = try value(base[..<dash]), high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw .invalid(field, "\(what) range \(base) runs backwards") }
                bounds = low...high
            } else {
                let start = try value(base)
                bounds = start...(pieces.count == 2 ? range.upperBound : start)
            }
            values.formUnion(stride(from: bounds.lowerBound, through: bounds.upperBound, by: step))
        }
        return values
    }
}

/// A schedule's slot, as a task it submitted carries it.
public struct ScheduleSlot: Sendable, Hashable {
    public var id: String
    public var slot: Date

    public init(id: String, slot: Date) {
        self.id = id
        self.slot = slot
    }

    /// The idempotency key of the slot's task: a slot submitted again gets the task made the first time.
    public var idempotencyKey: String { "schedule:\(id):\(Int64((slot.timeIntervalSince1970 * 1000).rounded()))" }
}
