import Foundation

/// A distribution of durations kept as counts in buckets whose bounds grow by √2 — Prometheus's way of
/// keeping percentiles that can be added up: a minute's histograms summed over a step, a type or the
/// whole cluster give that step's percentiles, where percentiles themselves could not be combined.
/// Bucket 0 holds 0–0.1 ms; bucket k > 0 holds (0.1·2^((k−1)/2), 0.1·2^(k/2)] ms, up to bucket 61
/// (about 1.7 days), which also holds everything longer. A percentile read back is within the bounds of
/// its bucket, interpolated (at most about 19% off).
public struct StatsHistogram: Sendable, Hashable {
    public static let bucketCount = 62
    /// Counts by bucket, trailing empty buckets left off (a histogram of fast pick-ups stays short).
    public private(set) var counts: [Int]

    public init(counts: [Int] = []) {
        self.counts = counts
        trim()
    }

    public var total: Int { counts.reduce(0, +) }

    public static func bucket(ofMilliseconds milliseconds: Double) -> Int {
        guard milliseconds > 0.1 else { return 0 }
        return min(Int((2 * log2(milliseconds / 0.1)).rounded(.up)), bucketCount - 1)
    }

    /// The upper bound of bucket `k`, in milliseconds.
    public static func upperBound(ofBucket k: Int) -> Double { 0.1 * pow(2, Double(k) / 2) }

    public mutating func add(milliseconds: Double) {
        let k = Self.bucket(ofMilliseconds: milliseconds)
        if counts.count <= k { counts += Array(repeating: 0, count: k + 1 - counts.count) }
        counts[k] += 1
    }

    public mutating func add(_ other: StatsHistogram) {
        if counts.count < other.counts.count { counts += Array(repeating: 0, count: other.counts.count - counts.count) }
        for (k, n) in other.counts.enumerated() { counts[k] += n }
    }

    /// The `q` quantile (0 < q ≤ 1) in milliseconds, interpolated within its bucket; nil when empty.
    public func quantile(_ q: Double) -> Double? {
        let total = total
        guard total > 0 else { return nil }
        let rank = q * Double(total)
        var below = 0
        for (k, n) in counts.enumerated() where n > 0 {
            if Double(below + n) >= rank {
                let lower = k == 0 ? 0 : Self.upperBound(ofBucket: k - 1)
                let upper = Self.upperBound(ofBucket: k)
                return lower + (upper - lower) * max(0, rank - Double(below)) / Double(n)
            }
            below += n
        }
        return Self.upperBound(ofBucket: counts.count - 1)
    }

    private mutating func trim() {
        while counts.last == 0 { counts.removeLast() }
    }
}

/// Whose share of the cluster's work a series counts: all of it, one task type's, or the tasks one node
/// initiates.
public enum StatsScope: Sendable, Hashable {
    case cluster
    case type(String)
    case node(String)

    /// As the `task_stats` table keys it: scope and name.
    public var key: (scope: String, name: String) {
        switch self {
        case .cluster: ("", "")
        case .type(let name): ("type", name)
        case .node(let name): ("node", name)
        }
    }
}

/// What a chart counts over a stretch of time: what finished in it by final state, the most tasks queued
/// and received at one sample in it, and the pick-up and run times of what finished. Two stretches add up:
/// counts and histograms summed, depths the larger.
public struct StatsCounts: Sendable, Hashable {
    public var completed = 0
    public var failed = 0
    public var cancelled = 0
    public var queued = 0
    public var received = 0
    /// Submit (or due, for a delayed or retried task) → claimed, of its last attempt.
    public var pickup = StatsHistogram()
    /// Claimed → finished, of its last attempt.
    public var run = StatsHistogram()

    public init() {}

    public mutating func add(_ other: StatsCounts) {
        completed += other.completed
        failed += other.failed
        cancelled += other.cancelled
        queued = max(queued, other.queued)
        received = max(received, other.received)
        pickup.add(other.pickup)
        run.add(other.run)
    }
}

/// One minute or one hour of one scope, and its counts (`bucket.completed` reads `bucket.counts.completed`).
/// Both grains are kept: a window of days is read in hours (168 rows for a week, not 10,080).
@dynamicMemberLookup
public struct StatsBucket: Sendable, Hashable {
    public enum Grain: Int, Sendable, CaseIterable {
        case minute = 60
        case hour = 3600

        public var seconds: Int { rawValue }

        /// The start of the bucket holding `date`.
        public func start(of date: Date) -> Date {
            let seconds = Double(rawValue)
            return Date(timeIntervalSince1970: (date.timeIntervalSince1970 / seconds).rounded(.down) * seconds)
        }

        /// The coarsest grain whose buckets fit whole in a step.
        public static func reading(step: Duration) -> Grain {
            step.components.seconds % Int64(Grain.hour.rawValue) == 0 ? .hour : .minute
        }
    }

    public var scope: StatsScope
    public var grain: Grain
    public var start: Date
    public var counts = StatsCounts()

    public init(scope: StatsScope, grain: Grain, start: Date) {
        self.scope = scope
        self.grain = grain
        self.start = start
    }

    public subscript<T>(dynamicMember keyPath: WritableKeyPath<StatsCounts, T>) -> T {
        get { counts[keyPath: keyPath] }
        set { counts[keyPath: keyPath] = newValue }
    }

    /// A task that has just finished, as the rollup reads it: its final state and when, and — while its row
    /// is still there — its type, initiating node and durations.
    public struct Finish: Sendable {
        public var state: TaskState
        public var at: Date
        public var type: String?
        public var node: String?
        public var pickupMilliseconds: Double?
        public var runMilliseconds: Double?

        public init(state: TaskState, at: Date, type: String?, node: String?, pickupMilliseconds: Double?, runMilliseconds: Double?) {
            self.state = state
            self.at = at
            self.type = type
            self.node = node
            self.pickupMilliseconds = pickupMilliseconds
            self.runMilliseconds = runMilliseconds
        }
    }

    /// The buckets `finishes` add to: one per scope (the cluster's, each type's, each node's), grain and
    /// bucket start.
    public static func rollUp(_ finishes: some Sequence<Finish>) -> [StatsBucket] {
        var buckets: [BucketKey: StatsBucket] = [:]
        for finish in finishes {
            var scopes: [StatsScope] = [.cluster]
            if let type = finish.type { scopes.append(.type(type)) }
            if let node = finish.node { scopes.append(.node(node)) }
            for grain in Grain.allCases {
                let start = grain.start(of: finish.at)
                for scope in scopes {
                    buckets[BucketKey(scope: scope, grain: grain, start: start),
                            default: StatsBucket(scope: scope, grain: grain, start: start)].count(finish)
                }
            }
        }
        return buckets.values.sorted {
            ($0.grain.rawValue, $0.start, $0.scope.key.scope, $0.scope.key.name) < ($1.grain.rawValue, $1.start, $1.scope.key.scope, $1.scope.key.name)
        }
    }

    private struct BucketKey: Hashable {
        var scope: StatsScope
        var grain: Grain
        var start: Date
    }

    private mutating func count(_ finish: Finish) {
        switch finish.state {
        case .completed: counts.completed += 1
        case .failed: counts.failed += 1
        case .cancelled: counts.cancelled += 1
        case .queued, .received: return
        }
        if let pickup = finish.pickupMilliseconds { counts.pickup.add(milliseconds: pickup) }
        if let run = finish.runMilliseconds { counts.run.add(milliseconds: run) }
    }
}

/// What `GET …/stats` was asked for: a window back from now, cut in steps of whole minutes.
public struct StatsWindow: Sendable, Hashable {
    public static let longest: Duration = .seconds(7 * 86_400)
    public static let mostPoints = 1440

    public var window: Duration
    public var step: Duration

    /// `window` and `step` as the API takes them (`90s`, `15m`, `1h`, `7d`); the step defaults to one that
    /// gives 60 to 168 points (1h → 1m, 24h → 10m, 7d → 1h).
    public init(window text: String?, step stepText: String?) throws(TaskyardError) {
        let window = try text.map { text throws(TaskyardError) in try Self.duration(text, field: "window") } ?? .seconds(3600)
        guard window >= .seconds(60), window <= Self.longest else {
            throw TaskyardError.invalid("window", "must be from 1m to 7d")
        }
        let step = try stepText.map { text throws(TaskyardError) in try Self.duration(text, field: "step") } ?? Self.defaultStep(for: window)
        guard step.components.seconds % 60 == 0, step.components.attoseconds == 0, step >= .seconds(60) else {
            throw TaskyardError.invalid("step", "must be whole minutes, 1m or more")
        }
        guard step <= window else { throw TaskyardError.invalid("step", "must not be longer than the window") }
        guard window.components.seconds / step.components.seconds <= Int64(Self.mostPoints) else {
            throw TaskyardError.invalid("step", "gives more than \(Self.mostPoints) points over the window: choose a longer one")
        }
        self.window = window
        self.step = step
    }

    static func defaultStep(for window: Duration) -> Duration {
        for step in [60, 300, 600, 1800, 3600] as [Int64] where window.components.seconds / step <= 168 {
            return .seconds(step)
        }
        return .seconds(3600)
    }

    /// A whole number and one unit of s, m, h or d.
    static func duration(_ text: String, field: String) throws(TaskyardError) -> Duration {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        guard let unit = text.last.flatMap({ units[$0] }), text.count >= 2, text.count <= 9,
              let number = Int64(text.dropLast()), number > 0 else {
            throw TaskyardError.invalid(field, "is a whole number and a unit (s, m, h or d), such as 1h")
        }
        return .seconds(number * unit)
    }

    /// The steps' starts, oldest first: aligned to the step (on the Unix epoch), the last one holding now.
    public func starts(now: Date) -> [Date] {
        let step = Double(self.step.components.seconds)
        let last = (now.timeIntervalSince1970 / step).rounded(.down) * step
        let count = Int(window.components.seconds / self.step.components.seconds)
        return (0..<count).map { Date(timeIntervalSince1970: last - Double(count - 1 - $0) * step) }
    }
}

/// One step of a series: its buckets added up.
@dynamicMemberLookup
public struct StatsPoint: Sendable, Hashable {
    public var at: Date
    public var counts = StatsCounts()

    public init(at: Date) { self.at = at }

    public subscript<T>(dynamicMember keyPath: KeyPath<StatsCounts, T>) -> T { counts[keyPath: keyPath] }

    /// The points of `window` as of `now` from the buckets of one scope that fall in it (others ignored).
    public static func series(_ buckets: some Sequence<StatsBucket>, window: StatsWindow, now: Date) -> [StatsPoint] {
        let starts = window.starts(now: now)
        guard let first = starts.first else { return [] }
        var points = starts.map(StatsPoint.init)
        let step = Double(window.step.components.seconds)
        for bucket in buckets {
            let index = Int(((bucket.start.timeIntervalSince1970 - first.timeIntervalSince1970) / step).rounded(.down))
            guard points.indices.contains(index) else { continue }
            points[index].counts.add(bucket.counts)
        }
        return points
    }
}
