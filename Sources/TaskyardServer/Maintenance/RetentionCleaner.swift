import Logging
import TaskyardStore

/// Deletes finished root tasks older than the retention period, with their descendants and history, in
/// small batches (ScyllaDB's task_ttl; the clean-up Elasticsearch's `.tasks` index never got).
public struct RetentionCleaner: MaintenanceDuty {
    public struct Configuration: MaintenanceDutyConfiguration {
        /// How long finished tasks are kept. Default 30 days; 0 keeps them forever.
        public var retentionSeconds = 30.0 * 86_400
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
        guard configuration.retentionSeconds > 0 else { return }
        var total = 0
        while true {
            let deleted = try await store.pruneFinished(olderThan: configuration.retentionSeconds, limit: configuration.batchSize)
            total += deleted
            if deleted < configuration.batchSize { break }
        }
        if total > 0 { logger.info("deleted finished tasks past retention", metadata: ["tasks": "\(total)"]) }
    }
}
