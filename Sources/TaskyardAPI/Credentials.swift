import Foundation
import TaskyardDomain

/// `POST /api/v1/tokens`.
public struct CreateTokenRequest: Codable, Sendable {
    public var kind: TokenKind
    public var name: String
    public var scopes: [TokenScope]?
    public var clusterID: String?
    public var nodeID: String?
    public var expiresAt: Date?

    enum CodingKeys: String, CodingKey {
        case kind, name, scopes, clusterID = "cluster_id", nodeID = "node_id", expiresAt = "expires_at"
    }

    public init(_ request: TokenRequest) {
        kind = request.kind
        name = request.name
        scopes = request.scopes
        clusterID = request.clusterID
        nodeID = request.nodeID
        expiresAt = request.expiresAt
    }

    public var request: TokenRequest {
        TokenRequest(kind: kind, name: name, scopes: scopes ?? [], clusterID: clusterID, nodeID: nodeID, expiresAt: expiresAt)
    }
}

/// A token as the API shows it; `token`, the secret, only in the answer that created it.
public struct TokenObject: Codable, Sendable, Hashable {
    public var id: Int64
    public var kind: TokenKind
    public var name: String
    public var scopes: [TokenScope]
    public var clusterID: String?
    public var nodeID: String?
    public var createdAt: Date
    public var expiresAt: Date?
    public var lastUsedAt: Date?
    public var revokedAt: Date?
    public var token: String?

    enum CodingKeys: String, CodingKey {
        case id, kind, name, scopes, token, clusterID = "cluster_id", nodeID = "node_id", createdAt = "created_at"
        case expiresAt = "expires_at", lastUsedAt = "last_used_at", revokedAt = "revoked_at"
    }

    public init(_ token: APIToken, secret: String? = nil) {
        id = token.id
        kind = token.kind
        name = token.name
        scopes = token.scopes
        clusterID = token.clusterID
        nodeID = token.nodeID
        createdAt = token.createdAt
        expiresAt = token.expiresAt
        lastUsedAt = token.lastUsedAt
        revokedAt = token.revokedAt
        self.token = secret
    }

    /// Every field, null included; `token` only when there is a secret to show.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(kind, forKey: .kind)
        try container.encode(name, forKey: .name)
        try container.encode(scopes, forKey: .scopes)
        try container.encode(clusterID, forKey: .clusterID)
        try container.encode(nodeID, forKey: .nodeID)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(revokedAt, forKey: .revokedAt)
        try container.encodeIfPresent(token, forKey: .token)
    }
}

public struct TokenList: Codable, Sendable {
    public var tokens: [TokenObject]
    public init(tokens: [TokenObject]) { self.tokens = tokens }
}

/// `GET /api/v1/clusters/{cluster_id}/signing-keys`: what participants verify grants with.
public struct SigningKeyList: Codable, Sendable {
    public struct Key: Codable, Sendable, Hashable {
        public var id: String
        public var algorithm: String
        /// The raw 32-byte Ed25519 public key, base64.
        public var publicKey: String

        enum CodingKeys: String, CodingKey { case id, algorithm, publicKey = "public_key" }

        public init(id: String, algorithm: String, publicKey: String) {
            self.id = id
            self.algorithm = algorithm
            self.publicKey = publicKey
        }
    }

    public var keys: [Key]
    public init(keys: [Key]) { self.keys = keys }
}

/// A task in a poll's answer: the task object plus what only the claiming node ever sees, the claim's
/// secret `lease` and the server-signed `grants` its participants verify, one per participant by node.
@dynamicMemberLookup
public struct ClaimedTaskObject: Codable, Sendable, Hashable {
    public var task: TaskObject
    public var lease: String
    public var grants: [String: String]
    /// The attempt's span (W3C `traceparent`) when the server traces: the agent's spans for the attempt are
    /// its children. Absent otherwise.
    public var traceparent: String?

    enum CodingKeys: String, CodingKey { case lease, grants, traceparent = "attempt_traceparent" }

    public subscript<T>(dynamicMember keyPath: KeyPath<TaskObject, T>) -> T { task[keyPath: keyPath] }

    public init(task: TaskObject, lease: String, grants: [String: String]) {
        self.task = task
        self.lease = lease
        self.grants = grants
    }

    public init(from decoder: any Decoder) throws {
        task = try TaskObject(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        lease = try container.decode(String.self, forKey: .lease)
        grants = try container.decode([String: String].self, forKey: .grants)
        traceparent = try container.decodeIfPresent(String.self, forKey: .traceparent)
    }

    public func encode(to encoder: any Encoder) throws {
        try task.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lease, forKey: .lease)
        try container.encode(grants, forKey: .grants)
        try container.encodeIfPresent(traceparent, forKey: .traceparent)
    }

    /// The grant the claim carries for `node`'s part; "" when the node is no participant (refused by all).
    public func grant(for node: String) -> String { grants[node] ?? "" }
}

/// `POST /api/v1/tasks/{cluster_id}/{node_id}/scrape-check`: may the token with this SHA-256 read the
/// node's cluster? How an agent decides a scrape of its `/metrics` without sending the scraper's secret on.
public struct ScrapeCheckRequest: Codable, Sendable {
    public var tokenSHA256: String
    enum CodingKeys: String, CodingKey { case tokenSHA256 = "token_sha256" }
    public init(tokenSHA256: String) { self.tokenSHA256 = tokenSHA256 }
}

/// What the agent answers the scrape: 200, or the 401 or 403 the server would have answered the token.
public struct ScrapeCheckResponse: Codable, Sendable {
    public var status: Int
    public init(status: Int) { self.status = status }
}

/// `POST /api/v1/tasks/{cluster_id}/{node_id}/{task_id}/rollback-grants`: grants to undo what the named
/// participants did in an attempt the node holds and is about to report failed.
public struct RollbackGrantsRequest: Codable, Sendable {
    public var attempt: Int
    public var lease: String
    public var nodes: [String]

    public init(attempt: Int, lease: String, nodes: [String]) {
        self.attempt = attempt
        self.lease = lease
        self.nodes = nodes
    }
}

/// The answer to `…/rollback-grants`: a rollback grant per node.
public struct GrantsResponse: Codable, Sendable {
    public var grants: [String: String]
    public init(grants: [String: String]) { self.grants = grants }
}
