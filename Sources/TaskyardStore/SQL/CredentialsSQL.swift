import Postgres
import TaskyardDomain

/// Every statement on `api_tokens` and `signing_keys`. Digests and keys travel as hex text.
enum CredentialsSQL {
    static let tokenColumns = """
        id, kind, name, scopes, cluster_id, node_id, created_at, expires_at, last_used_at, revoked_at
        """

    static let createToken = PostgresStatement("api_tokens.create", """
        INSERT INTO api_tokens (kind, name, scopes, cluster_id, node_id, secret_hash, expires_at)
        VALUES ($1, $2, $3::text[], $4, $5, decode($6, 'hex'), $7::timestamptz)
        RETURNING \(tokenColumns)
        """)

    /// The token whose secret has this digest, whatever its state (the caller tells revoked from expired).
    static let tokenBySecretHash = PostgresStatement("api_tokens.by_secret_hash", """
        SELECT \(tokenColumns) FROM api_tokens WHERE secret_hash = decode($1, 'hex')
        """)

    /// All tokens, or those bound to one cluster ($1), oldest first.
    static let listTokens = PostgresStatement("api_tokens.list", """
        SELECT \(tokenColumns) FROM api_tokens
         WHERE $1::text IS NULL OR cluster_id = $1::text
         ORDER BY id
        """)

    static let getToken = PostgresStatement("api_tokens.get", """
        SELECT \(tokenColumns) FROM api_tokens WHERE id = $1
        """)

    /// Revoking twice keeps the first time.
    static let revokeToken = PostgresStatement("api_tokens.revoke", """
        UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
        RETURNING \(tokenColumns)
        """)

    /// The servers gather the tokens used since their last write and record them in one statement.
    static let touchTokens = PostgresStatement("api_tokens.touch", """
        UPDATE api_tokens SET last_used_at = now()
         WHERE id = ANY ($1::bigint[]) AND (last_used_at IS NULL OR last_used_at < now() - interval '1 second')
        """)

    /// The live keys of a cluster, newest first: the first signs, all verify.
    /// A cluster's live public keys, newest (the signing one) first: what the key route answers. It never
    /// reads a private key.
    static let publicSigningKeys = PostgresStatement("signing_keys.public", """
        SELECT id, algorithm, encode(public_key, 'hex') AS public_key
          FROM signing_keys
         WHERE cluster_id = $1 AND retired_at IS NULL
         ORDER BY created_at DESC, id
        """)

    /// The newest live key of a cluster, its private half sealed with the servers' key file.
    static let newestSigningKey = PostgresStatement("signing_keys.newest", """
        SELECT id, encode(sealed_private_key, 'hex') AS sealed_private_key
          FROM signing_keys
         WHERE cluster_id = $1 AND retired_at IS NULL
         ORDER BY created_at DESC, id
         LIMIT 1
        """)

    /// Serialises the making of a cluster's keys between servers, for the transaction.
    static let lockSigningKeys = PostgresStatement("signing_keys.lock", """
        SELECT pg_advisory_xact_lock(hashtextextended('taskyard signing keys ' || $1, 0)) IS NOT NULL AS locked
        """)

    /// A new key for the cluster: its first, or a rotation (the newest live key signs).
    static let createSigningKey = PostgresStatement("signing_keys.create", """
        INSERT INTO signing_keys (id, cluster_id, algorithm, public_key, sealed_private_key)
        SELECT $1, $2, 'ed25519', decode($3, 'hex'), decode($4, 'hex')
         WHERE EXISTS (SELECT 1 FROM clusters WHERE id = $2)
        RETURNING id, algorithm, encode(public_key, 'hex') AS public_key
        """)

    /// Retires a key of the cluster (again: no change) and erases its private half; no row when it has no
    /// such key.
    static let retireSigningKey = PostgresStatement("signing_keys.retire", """
        UPDATE signing_keys SET retired_at = coalesce(retired_at, now()), sealed_private_key = NULL
         WHERE cluster_id = $1 AND id = $2
        RETURNING id
        """)

    static let all = [createToken, tokenBySecretHash, listTokens, getToken, revokeToken, touchTokens, publicSigningKeys,
                      newestSigningKey, lockSigningKeys, createSigningKey, retireSigningKey]
}

/// `CredentialStore`'s statements of four values or more, as named fields.
enum CredentialStatements {
    /// `CredentialsSQL.createToken`: a token, by the digest of its secret.
    struct CreateToken: PostgresTypedStatement {
        static var statement: PostgresStatement { CredentialsSQL.createToken }
        var request: TokenRequest
        var secretHash: String
        var bindings: [any PostgresEncodable] {
            [request.kind.rawValue, request.name, request.scopes.map(\.rawValue), request.clusterID, request.nodeID,
             secretHash, request.expiresAt]
        }
        func decodeRow(_ row: PostgresRow) throws(PostgresError) -> APIToken { try APIToken(row: row) }
    }

    /// `CredentialsSQL.createSigningKey`: a cluster's key, its private half sealed.
    struct CreateSigningKey: PostgresTypedStatement {
        static var statement: PostgresStatement { CredentialsSQL.createSigningKey }
        var key: SigningKeyRecord
        var cluster: String
        var sealedPrivateKeyHex: String
        var bindings: [any PostgresEncodable] { [key.id, cluster, key.publicKeyHex, sealedPrivateKeyHex] }
    }
}
