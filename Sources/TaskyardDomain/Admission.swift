/// What a task that arrives when its concurrency key is full does (`on_limit`).
public enum LimitStrategy: String, Sendable, Hashable, CaseIterable, Codable {
    /// It waits its turn (the default).
    case queue
    /// It is cancelled at once, with a reason.
    case cancelNewest = "cancel_newest"
    /// The oldest running (or queued) tasks of the key are cancelled to make room; it waits for them to stop.
    case cancelInProgress = "cancel_in_progress"
}

/// What a task does while one of its participants is offline (`on_offline`).
public enum OfflinePolicy: String, Sendable, Hashable, CaseIterable, Codable {
    /// It waits for the node to come back (the default).
    case wait
    /// It fails at once.
    case fail
}

/// A task's concurrency key: at most `limit` received tasks of the key in a cluster at once.
public struct ConcurrencyKey: Sendable, Hashable {
    public var key: String
    public var limit: Int
    public var onLimit: LimitStrategy

    public init(key: String, limit: Int = 1, onLimit: LimitStrategy = .queue) {
        self.key = key
        self.limit = limit
        self.onLimit = onLimit
    }

    public static let limits = 1...1_000_000

    /// `key`, `limit` and `on_limit` as a request gives them: a limit or a strategy without a key is refused.
    public init?(key: String?, limit: Int?, onLimit: LimitStrategy?, fieldPrefix prefix: String = "") throws(TaskyardError) {
        guard let key else {
            if limit != nil { throw .invalid(prefix + "concurrency_limit", "needs a concurrency_key") }
            if onLimit != nil { throw .invalid(prefix + "on_limit", "needs a concurrency_key") }
            return nil
        }
        self.init(key: key, limit: limit ?? 1, onLimit: onLimit ?? .queue)
    }

    func validate(fieldPrefix prefix: String) throws(TaskyardError) {
        guard TaskSubmission.Limits.keyLength.contains(key.unicodeScalars.count) else {
            throw .invalid(prefix + "concurrency_key", "must be 1–255 characters")
        }
        try InputLimits.checkNoNUL(key, field: prefix + "concurrency_key")
        guard Self.limits.contains(limit) else {
            throw .invalid(prefix + "concurrency_limit", "must be between 1 and \(Self.limits.upperBound)")
        }
    }
}

/// A follow-up task (`on_finish`): submitted on `node`, of `type`, in the transaction that finishes the task
/// that names it, with what that task ended with as its payload (`task_id`, `type`, `state`, `result`,
/// `error`, `payload`).
public struct FollowUp: Sendable, Hashable {
    public var type: String
    public var node: String

    public init(type: String, node: String) {
        self.type = type
        self.node = node
    }

    /// `{"type": …, "node": …}` as a request gives it; 422 naming the field for anything else.
    public init(json: JSONValue, field: String) throws(TaskyardError) {
        guard case .object(let members) = json else { throw .invalid(field, "must be an object {\"type\", \"node\"}") }
        if let unknown = members.keys.sorted().first(where: { $0 != "type" && $0 != "node" }) {
            throw .invalid("\(field).\(unknown)", "is not a field of on_finish (type, node)")
        }
        guard case .string(let type)? = members["type"] else { throw .invalid(field + ".type", "must be a task type") }
        guard case .string(let node)? = members["node"] else { throw .invalid(field + ".node", "must be a node id") }
        self.init(type: type, node: node)
    }

    public func validate(field: String) throws(TaskyardError) {
        try Identifier.validateTaskType(type, field: field + ".type")
        try Identifier.validate(node, field: field + ".node")
    }

    public var json: JSONValue { .object(["type": .string(type), "node": .string(node)]) }
}
