import Foundation
import Postgres
import TaskyardDomain

/// What every store of tasks shares: the pool, the settings, and where committed changes are announced.
struct StoreContext: Sendable {
    let pool: PostgresPool
    let configuration: TaskStore.Configuration
    let signals: TaskSignals
    let activity: TaskActivity
}

/// A store of one aggregate, over the context they all share.
protocol TaskStorePart {
    var context: StoreContext { get }
}

extension TaskStorePart {
    var pool: PostgresPool { context.pool }
    var configuration: TaskStore.Configuration { context.configuration }
    var signals: TaskSignals { context.signals }
    var activity: TaskActivity { context.activity }

    /// Sends the signals of tasks as a committed statement left them: work for their node when they can be
    /// claimed now (a delayed task is found by the poll's re-check when its time comes), finished when they
    /// ended (and tells `activity` of those).
    func signal(_ tasks: some Collection<TaskRecord>, extra: some Sequence<TaskSignal> = []) {
        activity.finished(tasks)
        var signals = Set(extra)
        let now = Date()
        for task in tasks {
            if task.state == .queued, task.runAfter.map({ $0 <= now }) ?? true {
                signals.insert(.work(cluster: task.clusterID, node: task.assignedNode))
            } else if task.state.isTerminal {
                signals.insert(.finished(cluster: task.clusterID, task: task.id))
            }
        }
        context.signals.send(signals)
    }

    /// The task as it stands, to explain why a guarded statement changed nothing; 404 when it is gone.
    static func existingTask(_ cluster: String, _ id: Int64,
                                     on connection: isolated PostgresConnection) throws -> TaskRecord {
        guard let row = try connection.query(TasksSQL.get, [cluster, id]).first else { throw unknownTask(cluster, id) }
        return try TaskRecord(row: row)
    }

    static func requireCluster(_ cluster: String, on connection: isolated PostgresConnection) throws {
        guard try connection.query(ClustersSQL.exists, [cluster]).single().decode("found", as: Bool.self) else {
            throw unknownCluster(cluster)
        }
    }
}

func unknownCluster(_ cluster: String) -> TaskyardError {
    TaskyardError(.notFound, code: .clusterNotFound, message: "cluster \(cluster) does not exist")
}

func unknownTask(_ cluster: String, _ id: Int64) -> TaskyardError {
    TaskyardError(.notFound, code: .taskNotFound, message: "task \(id) does not exist in cluster \(cluster)")
}
