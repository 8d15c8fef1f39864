import Logging
import TaskyardStore

/// Returns received tasks whose lease ran out to the queue (or ends them), so that a task held by a lost
/// agent or node is offered again (Elasticsearch's persistent tasks; River's job rescuer).
public struct LeaseExpirer: MaintenanceDuty {
    public struct Configuration: MaintenanceDutyConfiguration {
        /// How often expired leases are looked for. Default 1 s: a lost task waits at most its lease plus
        /// this long.
        public var interval: Duration = .seconds(1)
        /// Tasks ended per statement; the duty repeats while batches come back full. Default 500: short
        /// transactions that never hold many row locks.
        public var batchSize = 500
        public init() {}
    }

    public let name = "lease expirer"
    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func run(_ context: MaintenanceContext) async throws {
        let (store, logger) = (context.store, context.logger)
        while true {
            let ended = try await store.maintenance.expireLeases(limit: configuration.batchSize)
            for task in ended {
                logger.info("lease expired", metadata: [
                    "task": "\(task.id)", "cluster": "\(task.clusterID)", "node": "\(task.assignedNode)",
                    "attempt": "\(task.attempt)", "now": "\(task.state.rawValue)",
                ])
            }
            if ended.count < configuration.batchSize { return }
        }
    }
}
