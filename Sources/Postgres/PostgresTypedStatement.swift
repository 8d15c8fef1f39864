/// A statement with its parameters as named fields, in the shape of PostgresNIO's
/// `PostgresPreparedStatement`: the SQL, the values of `$1`, `$2`, … built from the fields in one place,
/// and how a row is read. A caller fills in fields by name; none lines up a positional list of values.
public protocol PostgresTypedStatement: Sendable {
    associatedtype Row: Sendable = PostgresRow
    static var statement: PostgresStatement { get }
    /// The values of `$1`, `$2`, … in order.
    var bindings: [any PostgresEncodable] { get }
    func decodeRow(_ row: PostgresRow) throws(PostgresError) -> Row
}

extension PostgresTypedStatement {
    /// The statement's name with its bindings: how a plan is asked for (`EXPLAIN`) with the values the store binds.
    public var namedBindings: (name: String, bindings: [any PostgresEncodable]) { (Self.statement.name, bindings) }
}

extension PostgresTypedStatement where Row == PostgresRow {
    public func decodeRow(_ row: PostgresRow) throws(PostgresError) -> PostgresRow { row }
}

extension PostgresConnection {
    /// Runs a typed statement (prepared on this connection the first time) and reads its rows.
    @discardableResult
    public func run<Statement: PostgresTypedStatement>(_ statement: Statement) throws(PostgresError) -> [Statement.Row] {
        try query(Statement.statement, statement.bindings).map { row throws(PostgresError) in try statement.decodeRow(row) }
    }

    /// The same in a transaction of its own under `settings` (`SET LOCAL`), as `query(_:_:settings:)`.
    @discardableResult
    public func run<Statement: PostgresTypedStatement>(_ statement: Statement,
                                                       settings: [String]) throws(PostgresError) -> [Statement.Row] {
        try query(Statement.statement, statement.bindings, settings: settings)
            .map { row throws(PostgresError) in try statement.decodeRow(row) }
    }
}

extension PostgresPool {
    /// Runs a typed statement on a pooled connection.
    @discardableResult
    public func run<Statement: PostgresTypedStatement>(_ statement: Statement) async throws -> [Statement.Row] {
        try await withConnection { connection in try connection.run(statement) }
    }
}
