/// A named, parameterised SQL statement. A connection prepares it the first time it runs it and
/// reuses the server-side plan afterwards.
public struct PostgresStatement: Sendable, Hashable, CustomStringConvertible {
    /// Unique across the program; also the name of the server-side prepared statement.
    public let name: String
    public let sql: String

    public init(_ name: String, _ sql: String) {
        self.name = name
        self.sql = sql
    }

    public var description: String { name }
}
