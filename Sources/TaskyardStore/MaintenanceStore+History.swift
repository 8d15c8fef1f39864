import Postgres

/// The finished history's ranges of task ids: retention drops a whole range (its tasks, events and
/// participants' outcomes) instead of deleting row by row.
extension MaintenanceStore {
    /// How the ranges are sized and how far ahead they are made.
    public struct HistoryRanges: Sendable {
        /// A new range spans the ids handed out during this long (measured since the last range was made).
        public var period: Duration
        /// No range spans fewer ids: a quiet deployment keeps a few ranges, not one per period.
        public var minimumSpan: Int64 = 100_000
        /// Ranges kept ready ahead of the id sequence, so that a burst finds its range made.
        public var rangesAhead = 2

        /// A range for each thirtieth of the retention (an hour to a week; a week when kept forever):
        /// finished tasks go at most about that much after their retention.
        public init(retention: Duration) {
            let thirtieth = retention > .zero ? retention.inSeconds / 30 : 7 * 86_400
            period = .seconds(min(max(thirtieth, 3_600), 7 * 86_400))
        }
    }

    /// Makes the ranges that the next ids need (and at least `room` ids' worth); returns how many it made.
    @discardableResult
    public func extendHistory(_ ranges: HistoryRanges, room: Int64 = 0) async throws -> Int {
        try await pool.run(MaintenanceStatements.ExtendHistory(ranges: ranges, room: room)).first ?? 0
    }

    /// Drops, oldest first, every range whose tasks all finished more than `age` ago (with the later
    /// members of their trees); stops at the first range that must stay. Returns the ranges' lower bounds.
    public func retireExpiredHistory(olderThan age: Duration) async throws -> [Int64] {
        var dropped: [Int64] = []
        while let lower = try await pool.query(HistorySQL.retireOldest, [age.inSeconds]).first?.decode("dropped", as: Int64?.self) {
            dropped.append(lower)
        }
        return dropped
    }

    /// Ids below this lie in complete ranges, which retention drops whole; nil when there is none.
    public func historyClosedBelow() async throws -> Int64? {
        try await pool.query(HistorySQL.closedBelow).first?.decode("closed_below", as: Int64?.self)
    }

    /// The ranges, oldest first: `[lower, upper)` of task ids.
    public func historyRanges() async throws -> [Range<Int64>] {
        try await pool.query(HistorySQL.ranges).map { row throws(PostgresError) in
            try row.decode("lower_id", as: Int64.self)..<(try row.decode("upper_id", as: Int64.self))
        }
    }
}
