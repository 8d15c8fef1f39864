import Foundation
import Testing
import TaskyardDomain

/// The charts' arithmetic: histograms that add up, windows and steps as the API takes them, minutes into
/// steps.
@Suite("Task stats")
struct TaskStatsTests {
    @Test("a duration lands in the bucket whose bounds hold it; a percentile read back is within its bucket of the exact one")
    func histogramPercentiles() throws {
        #expect(StatsHistogram.bucket(ofMilliseconds: 0) == 0)
        #expect(StatsHistogram.bucket(ofMilliseconds: 0.1) == 0)
        #expect(StatsHistogram.bucket(ofMilliseconds: 0.1001) == 1)
        for k in 1..<StatsHistogram.bucketCount {
            let upper = StatsHistogram.upperBound(ofBucket: k)
            #expect(StatsHistogram.bucket(ofMilliseconds: upper * 0.999) == k, "just under bucket \(k)'s upper bound")
            #expect(StatsHistogram.bucket(ofMilliseconds: upper * 1.001) == min(k + 1, StatsHistogram.bucketCount - 1))
        }
        #expect(StatsHistogram.bucket(ofMilliseconds: 1e12) == StatsHistogram.bucketCount - 1, "everything longer in the last")

        // A spread of durations from 0.2 ms to 20 s, as pick-ups and runs are.
        var generator = SystemRandomNumberGenerator()
        let samples = (0..<5000).map { _ in 0.2 * pow(10, Double.random(in: 0...5, using: &generator)) }.sorted()
        var histogram = StatsHistogram()
        for sample in samples { histogram.add(milliseconds: sample) }
        #expect(histogram.total == 5000)
        for q in [0.5, 0.9, 0.99] {
            let exact = samples[Int((q * Double(samples.count)).rounded(.up)) - 1]
            let estimate = try #require(histogram.quantile(q))
            #expect(abs(estimate - exact) / exact < 0.42, "p\(Int(q * 100)): \(estimate) against \(exact): one bucket (factor √2) at most")
        }
        #expect(StatsHistogram().quantile(0.5) == nil, "no samples: no percentile")
        var one = StatsHistogram()
        one.add(milliseconds: 3)
        #expect(one.quantile(0.5)! > StatsHistogram.upperBound(ofBucket: StatsHistogram.bucket(ofMilliseconds: 3) - 1))
        #expect(one.quantile(0.99)! <= StatsHistogram.upperBound(ofBucket: StatsHistogram.bucket(ofMilliseconds: 3)))
    }

    @Test("histograms added bucket by bucket are the histogram of all their samples; trailing empty buckets are left off")
    func histogramsAdd() {
        var fast = StatsHistogram(), slow = StatsHistogram(), all = StatsHistogram()
        for ms in [0.05, 0.4, 1.2, 2.0] { fast.add(milliseconds: ms); all.add(milliseconds: ms) }
        for ms in [150.0, 3000, 45_000] { slow.add(milliseconds: ms); all.add(milliseconds: ms) }
        #expect(fast.counts.count < slow.counts.count, "a histogram of fast durations stays short")
        var sum = fast
        sum.add(slow)
        #expect(sum == all)
        var other = slow
        other.add(fast)
        #expect(other == all, "in either order")
        #expect(StatsHistogram(counts: [1, 0, 2, 0, 0]).counts == [1, 0, 2])
    }

    @Test("a window and a step are a whole number and a unit; the step is whole minutes within the window, at most 1,440 points")
    func windows() throws {
        let hour = try StatsWindow(window: nil, step: nil)
        #expect(hour.window == .seconds(3600) && hour.step == .seconds(60))
        #expect(try StatsWindow(window: "24h", step: nil).step == .seconds(600))
        #expect(try StatsWindow(window: "7d", step: nil).step == .seconds(3600))
        #expect(try StatsWindow(window: "6h", step: nil).step == .seconds(300))
        #expect(try StatsWindow(window: "90m", step: "15m").step == .seconds(900))
        #expect(try StatsWindow(window: "1d", step: "1m").window == .seconds(86_400), "1,440 points: the most")
        let refused: [(String?, String?, String)] = [
            ("0h", nil, "window"), ("30s", nil, "window"), ("8d", nil, "window"), ("1w", nil, "window"), ("h", nil, "window"),
            ("-1h", nil, "window"), ("1.5h", nil, "window"), ("99999999999d", nil, "window"),
            ("1h", "30s", "step"), ("1h", "90s", "step"), ("1h", "2h", "step"), ("7d", "1m", "step"), ("1h", "0m", "step"),
        ]
        for (window, step, field) in refused {
            #expect(throws: TaskyardError.self, "window \(window ?? "-") step \(step ?? "-")") {
                try StatsWindow(window: window, step: step)
            }
            do { _ = try StatsWindow(window: window, step: step) } catch { #expect(error.field == field) }
        }
    }

    @Test("steps start on multiples of the step; the last holds now; minutes add into their step, depth as the most")
    func series() throws {
        let window = try StatsWindow(window: "1h", step: "10m")
        let now = try #require(RFC3339.parse("2026-12-03T10:37:12Z"))
        let starts = window.starts(now: now)
        #expect(starts.count == 6)
        #expect(starts.first == RFC3339.parse("2026-12-03T09:40:00Z") && starts.last == RFC3339.parse("2026-12-03T10:30:00Z"))

        func minute(_ text: String, completed: Int = 0, failed: Int = 0, queued: Int = 0, pickup: Double? = nil) -> StatsBucket {
            var minute = StatsBucket(scope: .cluster, grain: .minute, start: RFC3339.parse(text)!)
            minute.completed = completed
            minute.failed = failed
            minute.queued = queued
            if let pickup { minute.pickup.add(milliseconds: pickup) }
            return minute
        }
        let points = StatsPoint.series([
            minute("2026-12-03T09:30:00Z", completed: 99),  // before the window: not counted
            minute("2026-12-03T09:41:00Z", completed: 3, queued: 7, pickup: 2),
            minute("2026-12-03T09:49:00Z", completed: 2, failed: 1, queued: 4, pickup: 200),
            minute("2026-12-03T10:36:00Z", completed: 5, queued: 1),
        ], window: window, now: now)
        #expect(points.map(\.completed) == [5, 0, 0, 0, 0, 5])
        #expect(points.map(\.failed) == [1, 0, 0, 0, 0, 0])
        #expect(points[0].queued == 7, "the most at one sample, not a sum")
        #expect(points[0].pickup.total == 2 && points[5].pickup.total == 0)
        #expect(points[0].pickup.quantile(0.99)! > 100)
    }

    @Test("a finished task counts in its minute and its hour for the cluster, its type and its node; a task whose row is gone, for the cluster only")
    func rollUp() throws {
        let at = try #require(RFC3339.parse("2026-12-03T10:00:30Z"))
        let buckets = StatsBucket.rollUp([
            .init(state: .completed, at: at, type: "scrub", node: "n1", pickupMilliseconds: 2, runMilliseconds: 40),
            .init(state: .failed, at: at + 10, type: "scrub", node: "n2", pickupMilliseconds: 3, runMilliseconds: 50),
            .init(state: .cancelled, at: at + 20, type: "probe", node: "n1", pickupMilliseconds: nil, runMilliseconds: nil),
            .init(state: .completed, at: at + 40, type: nil, node: nil, pickupMilliseconds: nil, runMilliseconds: nil),
        ])
        func find(_ scope: StatsScope, _ minute: String, _ grain: StatsBucket.Grain = .minute) -> StatsBucket? {
            buckets.first { $0.scope == scope && $0.grain == grain && $0.start == RFC3339.parse(minute) }
        }
        let cluster = try #require(find(.cluster, "2026-12-03T10:00:00Z"))
        #expect(cluster.completed == 1 && cluster.failed == 1 && cluster.cancelled == 1)
        #expect(cluster.pickup.total == 2 && cluster.run.total == 2, "a task cancelled before a claim has no durations")
        #expect(find(.cluster, "2026-12-03T10:01:00Z")?.completed == 1, "its own minute")
        let scrub = try #require(find(.type("scrub"), "2026-12-03T10:00:00Z"))
        #expect(scrub.completed == 1 && scrub.failed == 1 && scrub.cancelled == 0)
        let n1 = try #require(find(.node("n1"), "2026-12-03T10:00:00Z"))
        #expect(n1.completed == 1 && n1.cancelled == 1 && n1.failed == 0)
        #expect(find(.node("n2"), "2026-12-03T10:00:00Z")?.failed == 1)
        let hour = try #require(find(.cluster, "2026-12-03T10:00:00Z", .hour))
        #expect(hour.completed == 2 && hour.failed == 1 && hour.cancelled == 1, "the hour holds both minutes")
        #expect(buckets.count == 6 + 5, "minutes: 4 scopes in the first, the cluster in the second; hours: 5 scopes")
        #expect(StatsBucket.Grain.reading(step: .seconds(7200)) == .hour && StatsBucket.Grain.reading(step: .seconds(600)) == .minute)
    }
}
