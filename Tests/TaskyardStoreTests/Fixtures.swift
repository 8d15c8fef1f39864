import Foundation
import Postgres
import TaskyardDomain
import TaskyardStore

/// A cluster `c1` with nodes n1, n2 and n3, as agents would register them.
extension TaskStore {
    static let cluster = "c1"

    func makeCluster(nodes: [String] = ["n1", "n2", "n3"]) async throws {
        _ = try await createCluster(id: Self.cluster, name: "test cluster")
        for (index, node) in nodes.enumerated() {
            _ = try await registerNode(cluster: Self.cluster, id: node, endpoint: "http://127.0.0.1:\(7001 + index)")
        }
    }

    func submit(_ type: String = "noop", on nodes: [String] = ["n1", "n2"], payload: RawJSON = [:],
                priority: Int = 0) async throws -> TaskRecord {
        try await submit(TaskSubmission(type: type, participatingNodes: nodes, payload: payload, priority: priority),
                         cluster: Self.cluster).task
    }

    func claimOne(_ node: String = "n1") async throws -> ClaimedTask? {
        try await claim(cluster: Self.cluster, node: node, limit: 1, leaseSeconds: 30).first
    }

    func events(of task: TaskRecord) async throws -> [TaskEvent] {
        try await events(cluster: Self.cluster, taskID: task.id)
    }

    func reload(_ task: TaskRecord) async throws -> TaskRecord {
        try await self.task(cluster: Self.cluster, id: task.id)
    }

}
