import Logging
import TaskyardStore

/// Marks nodes offline when they stop polling, and moves their queued tasks to another online
/// participating node (unless a task's affinity is strict), writing the reason to each task's history; fails
/// the queued tasks that said `"on_offline": "fail"` and would run on an offline node.
public struct NodeMonitor: MaintenanceDuty {
    public struct Configuration: MaintenanceDutyConfiguration {
        /// How often nodes are checked. Default 2 s.
        public var interval: Duration = .seconds(2)
        /// A node with no poll or heartbeat for this long is offline. Default 60 s: three times the
        /// agents' default 20 s poll wait, so that one slow poll never counts as a lost node.
        public var nodeTimeout: Duration = .seconds(60)
        /// Tasks moved per statement; the duty repeats while batches come back full. Default 500.
        public var batchSize = 500
        public init() {}
    }

    public let name = "node monitor"
    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public func run(_ context: MaintenanceContext) async throws {
        let (store, logger) = (context.store, context.logger)
        for lost in try await store.maintenance.markOfflineNodes(notSeenFor: configuration.nodeTimeout) {
            logger.warning("node offline", metadata: ["cluster": "\(lost.cluster)", "node": "\(lost.node)"])
        }
        while true {
            let moved = try await store.maintenance.reassignFromOfflineNodes(limit: configuration.batchSize)
            for move in moved {
                logger.info("task reassigned after node loss",
                            metadata: ["task": "\(move.taskID)", "from": "\(move.from)", "to": "\(move.to)"])
            }
            if moved.count < configuration.batchSize { break }
        }
        while true {
            let failed = try await store.maintenance.failOfflineWaiters(limit: configuration.batchSize)
            for task in failed {
                logger.info("task failed: a node it runs on is offline", metadata: ["task": "\(task.id)", "error": "\(task.error ?? "")"])
            }
            if failed.count < configuration.batchSize { return }
        }
    }
}
