import Foundation

/// What a client token may do. `admin` includes the other three.
public enum TokenScope: String, Sendable, Hashable, CaseIterable, Codable {
    case read, submit, operate, admin
}

/// Client tokens are for people and programs; node tokens for one node agent each.
public enum TokenKind: String, Sendable, Hashable, Codable {
    case client, node
}

/// A token as the database keeps it: everything but the secret, of which only a digest is stored.
public struct APIToken: Sendable, Hashable {
    public var id: Int64
    public var kind: TokenKind
    public var name: String
    public var scopes: [TokenScope]
    /// A client token's cluster (nil: every cluster); a node token's cluster.
    public var clusterID: String?
    /// A node token's node.
    public var nodeID: String?
    public var createdAt: Date
    public var expiresAt: Date?
    public var lastUsedAt: Date?
    public var revokedAt: Date?

    public init(id: Int64, kind: TokenKind, name: String, scopes: [TokenScope], clusterID: String?, nodeID: String?,
                createdAt: Date, expiresAt: Date?, lastUsedAt: Date?, revokedAt: Date?) {
        self.id = id
        self.kind = kind
        self.name = name
        self.scopes = scopes
        self.clusterID = clusterID
        self.nodeID = nodeID
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.lastUsedAt = lastUsedAt
        self.revokedAt = revokedAt
    }

    /// Usable now: not revoked, not expired.
    public func isValid(at now: Date = Date()) -> Bool {
        revokedAt == nil && (expiresAt.map { $0 > now } ?? true)
    }

    /// Whether this token speaks for `cluster`: bound to it, or (a client token) to every cluster.
    public func covers(cluster: String) -> Bool {
        clusterID == nil || clusterID == cluster
    }

    public func has(_ scope: TokenScope) -> Bool {
        kind == .client && (scopes.contains(scope) || scopes.contains(.admin))
    }

    /// A node token for exactly this node.
    public func isNode(_ node: String, of cluster: String) -> Bool {
        kind == .node && clusterID == cluster && nodeID == node
    }
}

/// A request to make a token: validated here, before anything is written.
public struct TokenRequest: Sendable, Hashable {
    public var kind: TokenKind
    public var name: String
    public var scopes: [TokenScope]
    public var clusterID: String?
    public var nodeID: String?
    public var expiresAt: Date?

    public init(kind: TokenKind, name: String, scopes: [TokenScope] = [], clusterID: String? = nil, nodeID: String? = nil,
                expiresAt: Date? = nil) {
        self.kind = kind
        self.name = name
        self.scopes = scopes
        self.clusterID = clusterID
        self.nodeID = nodeID
        self.expiresAt = expiresAt
    }

    public static let maximumNameLength = 200

    public func validate(now: Date = Date()) throws(TaskyardError) {
        guard !name.isEmpty, name.count <= Self.maximumNameLength, !name.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) else {
            throw .invalid("name", "must be 1–\(Self.maximumNameLength) printable characters")
        }
        if let clusterID { try Identifier.validate(clusterID, field: "cluster_id") }
        if let expiresAt {
            try DateRange.check(expiresAt, field: "expires_at")
            guard expiresAt > now else { throw .invalid("expires_at", "must be in the future") }
        }
        switch kind {
        case .client:
            guard !scopes.isEmpty else { throw .invalid("scopes", "a client token needs at least one of read, submit, operate, admin") }
            if nodeID != nil { throw .invalid("node_id", "only a node token names a node") }
        case .node:
            guard clusterID != nil else { throw TaskyardError(.invalid, code: .missingField, message: "cluster_id is required for a node token", field: "cluster_id") }
            guard let nodeID else { throw TaskyardError(.invalid, code: .missingField, message: "node_id is required for a node token", field: "node_id") }
            try Identifier.validate(nodeID, field: "node_id")
            if !scopes.isEmpty { throw .invalid("scopes", "a node token has no scopes: it may act only for its node") }
        }
    }
}
