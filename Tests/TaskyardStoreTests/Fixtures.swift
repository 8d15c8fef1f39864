import Foundation
import Postgres
import TaskyardDomain
import TaskyardStore

/// A cluster `c1` with nodes n1, n2 and n3, as agents would register them.
extension TaskStore {
    static let cluster = "c1"

    /// Nodes of a capacity no test of the store's statements reaches, but the gang admission tests.
    func makeCluster(nodes: [String] = ["n1", "n2", "n3"], capacity: Int = 100_000) async throws {
        _ = try await clusters.createCluster(id: Self.cluster, name: "test cluster")
        for (index, node) in nodes.enumerated() {
            _ = try await clusters.registerNode(cluster: Self.cluster, id: node, endpoint: "http://127.0.0.1:\(7001 + index)",
                                                capacity: capacity)
        }
    }
}

extension SubmissionStore {
    func submit(_ type: String = "noop", on nodes: [String] = ["n1", "n2"], payload: RawJSON = [:],
                priority: Int = 0) async throws -> TaskRecord {
        try await submit(TaskSubmission(type: type, participatingNodes: nodes, payload: payload, priority: priority),
                         cluster: TaskStore.cluster).task
    }
}

extension QueueStore {
    func claimOne(_ node: String = "n1") async throws -> ClaimedTask? {
        try await claim(cluster: TaskStore.cluster, node: node, limit: 1, lease: .seconds(30)).first
    }
}

extension TaskReads {
    func events(of task: TaskRecord) async throws -> [TaskEvent] {
        try await events(cluster: TaskStore.cluster, taskID: task.id)
    }

    func reload(_ task: TaskRecord) async throws -> TaskRecord {
        try await self.task(cluster: TaskStore.cluster, id: task.id)
    }
}
