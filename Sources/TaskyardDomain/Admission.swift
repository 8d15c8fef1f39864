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
