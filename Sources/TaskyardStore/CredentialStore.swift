import Foundation
import Postgres
import TaskyardDomain

/// Tokens and signing keys. The caller makes secrets and keys (TaskyardSecurity); this type keeps only
/// what may be kept: a token's digest, never its secret.
public struct CredentialStore: Sendable {
    let pool: PostgresPool

    /// A credential store of its own is for test support; the product's is `TaskStore.credentials`.
    package init(pool: PostgresPool) {
        self.pool = pool
    }

    // MARK: - Tokens

    /// Writes a token whose secret has the SHA-256 digest `secretHash` (hex).
    public func createToken(_ request: TokenRequest, secretHash: String) async throws -> APIToken {
        try request.validate()
        guard let token = try await pool.run(CredentialStatements.CreateToken(request: request, secretHash: secretHash)).first else {
            throw PostgresError(kind: .server, message: "creating a token returned no row")
        }
        return token
    }

    /// The token with this digest, revoked and expired ones included; nil when there is none.
    public func token(secretHash: String) async throws -> APIToken? {
        try await pool.query(CredentialsSQL.tokenBySecretHash, [secretHash]).first.map { row throws(PostgresError) in
            try APIToken(row: row)
        }
    }

    /// Every token, or those bound to `cluster`.
    public func tokens(cluster: String? = nil) async throws -> [APIToken] {
        try await pool.query(CredentialsSQL.listTokens, [cluster]).map { row throws(PostgresError) in try APIToken(row: row) }
    }

    public func token(id: Int64) async throws -> APIToken? {
        try await pool.query(CredentialsSQL.getToken, [id]).first.map { row throws(PostgresError) in try APIToken(row: row) }
    }

    /// Revokes the token; nil when no token has that id.
    @discardableResult
    public func revokeToken(id: Int64) async throws -> APIToken? {
        try await pool.query(CredentialsSQL.revokeToken, [id]).first.map { row throws(PostgresError) in try APIToken(row: row) }
    }

    /// Records that these tokens were used (now).
    public func touchTokens(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        _ = try await pool.query(CredentialsSQL.touchTokens, [ids])
    }

    // MARK: - Signing keys

    /// A cluster's live public keys, newest (the signing one) first.
    public func publicSigningKeys(cluster: String) async throws -> [SigningKeyRecord] {
        try await pool.query(CredentialsSQL.publicSigningKeys, [cluster]).map { row throws(PostgresError) in try SigningKeyRecord(row: row) }
    }

    /// The cluster's newest live key, its private half sealed; nil when it has none.
    public func newestSigningKey(cluster: String) async throws -> SealedSigningKey? {
        try await pool.query(CredentialsSQL.newestSigningKey, [cluster]).first.map { row throws(PostgresError) in
            SealedSigningKey(id: try row.decode("id"), sealedPrivateKeyHex: try row.decode("sealed_private_key"))
        }
    }

    /// Adds `candidate` as the cluster's newest key — always (a rotation), or only when the cluster has no
    /// live key (`onlyIfNone`: servers starting together make one first key between them, not one each).
    /// Throws not-found for an unknown cluster.
    public func addSigningKey(_ candidate: SigningKeyRecord, sealedPrivateKeyHex: String, cluster: String, onlyIfNone: Bool) async throws {
        try await pool.withConnection { connection in
            try connection.transaction { connection in
                _ = try connection.query(CredentialsSQL.lockSigningKeys, [cluster])
                if onlyIfNone, !(try connection.query(CredentialsSQL.newestSigningKey, [cluster]).isEmpty) { return }
                let statement = CredentialStatements.CreateSigningKey(key: candidate, cluster: cluster, sealedPrivateKeyHex: sealedPrivateKeyHex)
                guard try connection.run(statement).count == 1 else { throw unknownCluster(cluster) }
            }
        }
    }

    /// Retires a key and erases its private half; false when the cluster has no key with that id.
    public func retireSigningKey(cluster: String, id: String) async throws -> Bool {
        try await pool.query(CredentialsSQL.retireSigningKey, [cluster, id]).count == 1
    }
}

/// A signing key's public half as stored: Ed25519, raw key in hex.
public struct SigningKeyRecord: Sendable, Hashable {
    public var id: String
    public var algorithm: String
    public var publicKeyHex: String

    public init(id: String, algorithm: String = "ed25519", publicKeyHex: String) {
        self.id = id
        self.algorithm = algorithm
        self.publicKeyHex = publicKeyHex
    }
}

/// A signing key's private half as stored: sealed with the servers' key file (`KeyFile`), in hex.
public struct SealedSigningKey: Sendable, Hashable {
    public var id: String
    public var sealedPrivateKeyHex: String
}

extension SigningKeyRecord {
    init(row: PostgresRow) throws(PostgresError) {
        self.init(id: try row.decode("id"), algorithm: try row.decode("algorithm"), publicKeyHex: try row.decode("public_key"))
    }
}

extension APIToken {
    init(row: PostgresRow) throws(PostgresError) {
        let kind: String = try row.decode("kind")
        let scopes: [String] = try row.decode("scopes")
        self.init(id: try row.decode("id"), kind: TokenKind(rawValue: kind) ?? .client, name: try row.decode("name"),
                  scopes: scopes.compactMap(TokenScope.init(rawValue:)), clusterID: try row.decode("cluster_id"),
                  nodeID: try row.decode("node_id"), createdAt: try row.decode("created_at"),
                  expiresAt: try row.decode("expires_at"), lastUsedAt: try row.decode("last_used_at"),
                  revokedAt: try row.decode("revoked_at"))
    }
}
