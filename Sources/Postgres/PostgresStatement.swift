/// A named, parameterised SQL statement. A connection prepares it the first time it runs it and
/// reuses the server-side plan afterwards.
public struct PostgresStatement: Sendable, Hashable, CustomStringConvertible {
    /// Unique across the program; also the name of the server-side prepared statement.
    public let name: String
    /// The SQL, led by a comment with the name: `pg_stat_activity`, `pg_stat_statements` and the server's
    /// log then say which statement of the program a query is.
    public let sql: String

    public init(_ name: String, _ sql: String) {
        self.name = name
        self.sql = "/* \(name) */ " + sql
    }

    /// The name a statement's text carries (`sql`'s leading comment), if it has one.
    public static func name(inText text: String) -> String? {
        guard text.hasPrefix("/* "), let end = text.range(of: " */") else { return nil }
        return String(text[text.index(text.startIndex, offsetBy: 3)..<end.lowerBound])
    }

    public var description: String { name }
}
