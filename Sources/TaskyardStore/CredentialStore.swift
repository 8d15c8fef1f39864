import Foundation
import Postgres
import TaskyardDomain

/// Tokens and signing keys. The caller makes secrets and keys (TaskyardSecurity); this type keeps only
/// what may be kept: a token's digest, never its secret.
public struct CredentialStore: Sendable {
    public let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    // MARK: - Tokens

    /// Writes a token whose secret has the SHA-256 digest `secretHash` (hex).
    public func createToken(_ request: TokenRequest, secretHash: String) async throws -> APIToken {
        try request.validate()
        let row = try await pool.query(CredentialsSQL.createToken, [
            request.kind.rawValue, request.name, request.scopes.map(\.rawValue), request.clusterID, request.nodeID,
            secretHash, request.expiresAt,
        ]).single()
        return try APIToken(row: row)
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

    /// A cluster's live keys, newest (the signing one) first.
    public func liveSigningKeys(cluster: String) async throws -> [SigningKeyRecord] {
        try await pool.query(CredentialsSQL.liveSigningKeys, [cluster]).map { row throws(PostgresError) in try SigningKeyRecord(row: row) }
    }

    /// The cluster's live keys; when it has none, `candidate` is added first. Servers starting together
    /// make one first key between them, not one each.
    public func liveSigningKeys(cluster: String, addingIfNone candidate: SigningKeyRecord) async throws -> [SigningKeyRecord] {
        let rows = try await pool.withConnection { connection in
            try connection.transaction { connection in
                _ = try connection.query(CredentialsSQL.lockSigningKeys, [cluster])
                let live = try connection.query(CredentialsSQL.liveSigningKeys, [cluster])
                if !live.isEmpty { return live }
                guard try connection.query(CredentialsSQL.createSigningKey, [
                    candidate.id, cluster, candidate.publicKeyHex, candidate.privateKeyHex,
                ]).count == 1 else { throw unknownCluster(cluster) }
                return try connection.query(CredentialsSQL.liveSigningKeys, [cluster])
            }
        }
        return try rows.map { row throws(PostgresError) in try SigningKeyRecord(row: row) }
    }
}

/// A signing key as stored: Ed25519, raw keys in hex.
public struct SigningKeyRecord: Sendable, Hashable {
    public var id: String
    public var algorithm: String
    public var publicKeyHex: String
    public var privateKeyHex: String

    public init(id: String, algorithm: String = "ed25519", publicKeyHex: String, privateKeyHex: String) {
        self.id = id
        self.algorithm = algorithm
        self.publicKeyHex = publicKeyHex
        self.privateKeyHex = privateKeyHex
    }
}

extension SigningKeyRecord {
    init(row: PostgresRow) throws(PostgresError) {
        self.init(id: try row.decode("id"), algorithm: try row.decode("algorithm"),
                  publicKeyHex: try row.decode("public_key"), privateKeyHex: try row.decode("private_key"))
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
