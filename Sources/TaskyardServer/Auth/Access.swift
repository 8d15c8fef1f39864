import TaskyardDomain

/// Who may call a route: the contract's *Credentials and permissions*, one rule per route, decided from
/// the token and the route's path alone (before any body is read).
enum Access: Sendable {
    /// No token needed: health, readiness, the OpenAPI document.
    case open
    /// A client token with this scope (admin has every scope) that covers the path's cluster, if the path
    /// has one; on routes without a cluster, handlers narrow what a cluster-bound token sees.
    case client(TokenScope)
    /// As `client`, or a node token of the path's cluster (node lists, signing keys).
    case clientOrClusterNode(TokenScope)
    /// A node token of exactly the path's cluster and node, or an admin token: node registration, and the
    /// agent's own poll, heartbeat and report paths.
    case pathNode

    /// Whether `token` may call a route with this rule on `cluster` and `node` (the path's, if any).
    func allows(_ token: APIToken, cluster: String?, node: String?) -> Bool {
        switch self {
        case .open:
            return true
        case .client(let scope):
            return token.has(scope) && (cluster.map(token.covers(cluster:)) ?? true)
        case .clientOrClusterNode(let scope):
            if token.kind == .node { return cluster != nil && token.clusterID == cluster }
            return Access.client(scope).allows(token, cluster: cluster, node: node)
        case .pathNode:
            guard let cluster, let node else { return false }
            return token.isNode(node, of: cluster) || Access.client(.admin).allows(token, cluster: cluster, node: node)
        }
    }
}
