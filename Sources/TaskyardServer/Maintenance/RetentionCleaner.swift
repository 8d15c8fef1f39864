import Logging
import TaskyardStore

/// Keeps the finished history's ranges of task ids made ahead of the sequence, drops whole ranges once
/// their tasks are past the retention period, and deletes row by row only what a range drop cannot take:
/// trees in a range that is not complete yet (a quiet deployment), and those a live task still holds
/// (ScyllaDB's task_ttl; the clean-up Elasticsearch's `.tasks` index never got).
public struct RetentionCleaner: MaintenanceDuty {
    public struct Configuration: MaintenanceDutyConfiguration {
        /// How long finished tasks are kept. Default 30 days; 0 keeps them forever.
        public var retention: Duration = .seconds(30 * 86_400) {
            didSet { ranges = MaintenanceStore.HistoryRanges(retention: retention) }
        }
        /// How the history's ranges are sized: by default one for each thirtieth of the retention.
        public var ranges = MaintenanceStore.HistoryRanges(retention: .seconds(30 * 86_400))
        /// How often old tasks are looked for. Default 60 s: retention is measured in days.
        public var interval: Duration = .seconds(60)
        /// Root tasks deleted per statement; the duty repeats while batches come back full. Default 500:
        /// each batch is a short transaction, so it never holds many locks for long.
        public var batchSize = 500
        public init() {}
    }

    public let name = "retention cleaner"
    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func run(_ context: MaintenanceContext) async throws {
        let (store, logger) = (context.store, context.logger)
        let made = try await store.maintenance.extendHistory(configuration.ranges)
        if made > 0 { logger.info("made history ranges ahead of the task ids", metadata: ["ranges": "\(made)"]) }
        guard configuration.retention > .zero else { return }
        let dropped = try await store.maintenance.retireExpiredHistory(olderThan: configuration.retention)
        if !dropped.isEmpty { logger.info("dropped history ranges past retention", metadata: ["ranges": "\(dropped.count)"]) }
        // A complete range waits for its drop; two periods later its stragglers go row by row.
        let sparing = try await store.maintenance.historyClosedBelow()
        let grace = configuration.ranges.period * 2
        var total = 0
        while true {
            let deleted = try await store.maintenance.pruneFinished(olderThan: configuration.retention, limit: configuration.batchSize,
                                                        sparing: sparing, grace: grace)
            total += deleted
            if deleted < configuration.batchSize { break }
        }
        if total > 0 { logger.info("deleted finished tasks past retention", metadata: ["tasks": "\(total)"]) }
    }
}
