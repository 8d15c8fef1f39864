/// One file of `migrations/`: `NNNN_description.sql`, applied in version order, each in its own transaction.
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Reads the version from a file name such as `0001_initial_schema.sql`.
    public init(fileName: String, sql: String) throws(TaskyardMigrationError) {
        let digits = fileName.prefix { $0.isNumber }
        guard !digits.isEmpty, let version = Int(digits), fileName.hasSuffix(".sql") else {
            throw TaskyardMigrationError("migration file \(fileName) must be named NNNN_description.sql")
        }
        self.init(version: version, name: fileName, sql: sql)
    }

    /// The migrations built into this binary (the package's `migrations/` folder at build time).
    public static func bundled() throws(TaskyardMigrationError) -> [Migration] {
        var migrations: [Migration] = []
        for file in embeddedMigrationFiles { migrations.append(try Migration(fileName: file.name, sql: file.sql)) }
        return migrations.sorted { $0.version < $1.version }
    }
}

public struct TaskyardMigrationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
