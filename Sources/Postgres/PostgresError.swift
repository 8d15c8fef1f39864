/// Every failure of the PostgreSQL client: the server's own error fields when the server sent them.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The connection string could not be parsed.
        case configuration
        /// Could not connect, or the connection broke; the connection is unusable afterwards.
        case connection
        /// The server answered the statement with an error (see `sqlState`).
        case server
        /// A value in a row did not have the type the caller asked for.
        case decoding
        /// No connection became free within the pool's checkout timeout.
        case poolTimeout
        /// The pool or connection was closed.
        case closed
    }

    public var kind: Kind
    /// SQLSTATE, such as `23505` for a unique violation.
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The constraint a violation names (`PG_DIAG_CONSTRAINT_NAME`).
    public var constraint: String?
    /// The statement that failed: its name, or its text when it has none.
    public var statement: String?

    public init(kind: Kind, message: String, sqlState: String? = nil, detail: String? = nil,
                hint: String? = nil, constraint: String? = nil, statement: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.statement = statement
    }

    /// What a caller can do about an error the server sent, by SQLSTATE class.
    public enum SQLClass: Sendable, Equatable {
        /// Class 22, data exception: a value the column or type cannot hold.
        case invalidValue
        /// Class 23, integrity constraint violation.
        case constraint
        /// Worth retrying later: serialization failure, deadlock, lock or statement timeout, a read-only
        /// server (a standby after failover), too many connections, shutting down.
        case transient
        case other
    }

    public var sqlClass: SQLClass {
        guard let sqlState else { return .other }
        if sqlState.hasPrefix("22") { return .invalidValue }
        if sqlState.hasPrefix("23") { return .constraint }
        if sqlState.hasPrefix("40") || sqlState.hasPrefix("53") || sqlState.hasPrefix("57")
            || ["55P03", "25006", "08006", "08003", "08001"].contains(sqlState) {
            return .transient
        }
        return .other
    }

    /// A serialization failure or deadlock: the statement did nothing and may simply run again.
    public var isRetryable: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// The connection cannot serve writes again (a standby after failover) or the server is going away:
    /// a pool replaces it rather than handing it out again.
    public var invalidatesConnection: Bool {
        sqlState == "25006" || sqlState?.hasPrefix("57P") == true
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    public var isCheckViolation: Bool { sqlState == "23514" }

    public var description: String {
        var text = "PostgreSQL \(kind) error"
        if let sqlState { text += " \(sqlState)" }
        text += ": \(message)"
        if let detail { text += " (detail: \(detail))" }
        if let hint { text += " (hint: \(hint))" }
        if let statement { text += " [\(statement)]" }
        return text
    }
}
