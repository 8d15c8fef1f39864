import TaskyardDomain
import TaskyardSecurity
import TaskyardStore

extension TaskStore {
    /// Writes a token straight into the database (as `taskyard token create --database-url` does) and
    /// returns its secret.
    public func mintToken(_ request: TokenRequest) async throws -> String {
        let secret = TokenSecret.generate()
        _ = try await CredentialStore(pool: pool).createToken(request, secretHash: TokenSecret.hash(secret))
        return secret
    }

    public func mintToken(scopes: [TokenScope], cluster: String? = nil, name: String = "test") async throws -> String {
        try await mintToken(TokenRequest(kind: .client, name: name, scopes: scopes, clusterID: cluster))
    }

    public func mintNodeToken(cluster: String, node: String) async throws -> String {
        try await mintToken(TokenRequest(kind: .node, name: node, clusterID: cluster, nodeID: node))
    }
}
