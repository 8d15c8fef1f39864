import Foundation
import Postgres
import TaskyardDomain
import TaskyardSecurity

/// Clusters and their nodes: registration, heartbeats, the lists.
public struct ClusterStore: Sendable, TaskStorePart {
    let context: StoreContext

    // MARK: - Clusters

    public func createCluster(id: String, name: String) async throws -> Cluster {
        try Identifier.validate(id, field: "id")
        guard !name.isEmpty else { throw TaskyardError.invalid("name", "must not be empty") }
        try configuration.limits.check(name, field: "name", length: configuration.limits.nameLength)
        let rows = try await pool.query(ClustersSQL.create, [id, name])
        guard let row = rows.first else {
            throw TaskyardError(.conflict, code: .clusterExists, message: "cluster \(id) already exists", field: "id")
        }
        return try Cluster(row: row)
    }

    public func all() async throws -> [Cluster] {
        try await pool.query(ClustersSQL.list).map { row throws(PostgresError) in try Cluster(row: row) }
    }

    // MARK: - Nodes

    /// Registers a node, or updates its endpoint, labels and capacity (idempotent), and marks it online.
    public func registerNode(cluster: String, id: String, endpoint: String, labels: JSONValue = [:],
                             capacity: Int = Node.defaultCapacity) async throws -> Node {
        try Identifier.validate(cluster, field: "cluster_id")
        try Identifier.validate(id, field: "node_id")
        _ = try NodeEndpoint(parsing: endpoint)
        guard labels.isObject else { throw TaskyardError.invalid("labels", "must be a JSON object") }
        try configuration.limits.check(labels, field: "labels", bytes: configuration.limits.labelsBytes)
        guard capacity >= 1, capacity <= Int(Int32.max) else {
            throw TaskyardError.invalid("capacity", "must be a positive integer")
        }
        do {
            let statement = RegisterNodeStatement(cluster: cluster, node: id, endpoint: endpoint, labels: labels, capacity: capacity)
            guard let node = try await pool.run(statement).first else { throw PostgresError(kind: .server, message: "registering a node returned no row") }
            return node
        } catch let error as PostgresError where error.isForeignKeyViolation {
            throw unknownCluster(cluster)
        }
    }

    /// A poll or heartbeat from the node: it is alive.
    public func recordHeartbeat(cluster: String, node: String) async throws {
        let rows = try await pool.query(NodesSQL.heartbeat, [cluster, node])
        guard rows.affectedRows == 1 else {
            throw TaskyardError(.notFound, code: .nodeNotFound,
                                message: "node \(node) is not registered in cluster \(cluster)")
        }
    }

    public func nodes(cluster: String) async throws -> [Node] {
        let rows = try await pool.withConnection { connection in
            try Self.requireCluster(cluster, on: connection)
            return try connection.query(NodesSQL.list, [cluster])
        }
        return try rows.map { row throws(PostgresError) in try Node(row: row) }
    }
}
