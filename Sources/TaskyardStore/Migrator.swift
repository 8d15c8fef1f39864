import Postgres

/// Applies pending migrations in order, each in its own transaction, under a PostgreSQL advisory lock:
/// replicas that start together queue on the lock and apply each file exactly once. A file whose text
/// changed after it was applied stops the run (its checksum no longer matches), because the schema in
/// the database is then not the one the file describes.
public struct Migrator: Sendable {
    /// An arbitrary constant shared by every Taskyard process ("taskyard" in ASCII).
    public static let advisoryLockKey: Int64 = 0x7461_736B_7961_7264

    public let migrations: [Migration]

    public init(migrations: [Migration]) throws(TaskyardMigrationError) {
        var versions = Set<Int>()
        for migration in migrations where !versions.insert(migration.version).inserted {
            throw TaskyardMigrationError("two migrations have version \(migration.version)")
        }
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    public static func bundled() throws(TaskyardMigrationError) -> Migrator {
        try Migrator(migrations: Migration.bundled())
    }

    public struct Outcome: Sendable, Equatable {
        /// Files this run applied, in order.
        public var applied: [String]
        /// Files that were already applied before this run.
        public var alreadyApplied: [String]
        /// Versions recorded in the database that this binary does not know (a newer binary ran).
        public var unknownVersions: [Int]
    }

    /// Brings the database up to date. `progress` is called after each file is applied.
    @discardableResult
    public func migrate(_ pool: PostgresPool, progress: @escaping @Sendable (Migration) -> Void = { _ in }) async throws -> Outcome {
        let migrations = self.migrations
        return try await pool.withConnection { connection in
            // Migrations may wait for locks and run long (an index on a large table): the server's bounds on
            // its own statements do not apply to them. They are restored for the connection's next user.
            let bounds = try connection.query("SELECT current_setting('statement_timeout') AS statement, current_setting('lock_timeout') AS lock").single()
            let statementTimeout: String = try bounds.decode("statement")
            let lockTimeout: String = try bounds.decode("lock")
            try connection.execute("SET statement_timeout = 0; SET lock_timeout = 0")
            defer {
                _ = try? connection.query("SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false)",
                                          [statementTimeout, lockTimeout])
            }
            try connection.query(SchemaMigrationsSQL.lock, [Self.advisoryLockKey])
            defer { _ = try? connection.query(SchemaMigrationsSQL.unlock, [Self.advisoryLockKey]) }
            try connection.execute(SchemaMigrationsSQL.createTable)

            var recorded: [Int: (name: String, checksum: String)] = [:]
            for row in try connection.query(SchemaMigrationsSQL.applied) {
                recorded[try row.decode("version")] = (try row.decode("name"), try row.decode("checksum"))
            }
            var outcome = Outcome(applied: [], alreadyApplied: [], unknownVersions: [])
            for migration in migrations {
                let checksum: String = try connection.query(SchemaMigrationsSQL.checksum, [migration.sql])
                    .single().decode("checksum")
                if let existing = recorded.removeValue(forKey: migration.version) {
                    guard existing.checksum == checksum else {
                        throw TaskyardMigrationError("""
                            migration \(migration.name) was changed after it was applied to this database \
                            (applied as \(existing.name), checksum \(existing.checksum.prefix(12))…, file now \
                            \(checksum.prefix(12))…). Applied migrations must never change: restore the file \
                            and put the change in a new migration.
                            """)
                    }
                    outcome.alreadyApplied.append(migration.name)
                    continue
                }
                do {
                    try connection.transaction { connection in
                        try connection.execute(migration.sql)
                        try connection.query(SchemaMigrationsSQL.record, [migration.version, migration.name, checksum])
                    }
                } catch {
                    throw TaskyardMigrationError("migration \(migration.name) failed and was rolled back: \(error)")
                }
                outcome.applied.append(migration.name)
                progress(migration)
            }
            outcome.unknownVersions = recorded.keys.sorted()
            return outcome
        }
    }
}
