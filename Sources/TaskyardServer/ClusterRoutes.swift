import Hummingbird
import TaskyardAPI
import TaskyardDomain

extension APIRoutes {
    func createCluster(_ request: inout Request, _ caller: APIToken) async throws -> Response {
        let body = try await decode(CreateClusterRequest.self, &request)
        guard caller.covers(cluster: body.id) else {
            throw APIError.forbidden("this token is bound to cluster \(caller.clusterID ?? "")")
        }
        let cluster = try await store.clusters.createCluster(id: body.id, name: body.name ?? body.id)
        return try jsonResponse(ClusterObject(cluster), status: .created)
    }

    /// A token bound to one cluster sees that one only.
    func listClusters(_ caller: APIToken) async throws -> Response {
        let clusters = try await store.clusters.all().filter { caller.covers(cluster: $0.id) }
        return try jsonResponse(ClusterList(clusters: clusters.map(ClusterObject.init)))
    }

    func registerNode(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let body = try await decode(RegisterNodeRequest.self, &request)
        let registered = try await store.clusters.registerNode(cluster: cluster, id: node, endpoint: body.endpoint,
                                                      labels: body.labels ?? [:], capacity: body.capacity ?? Node.defaultCapacity)
        return try jsonResponse(NodeObject(registered))
    }

    func listNodes(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        return try jsonResponse(NodeList(nodes: try await store.clusters.nodes(cluster: cluster).map(NodeObject.init)))
    }
}
