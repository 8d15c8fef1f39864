import Postgres

/// Every statement on `schema_migrations`, the migrator's own table.
enum SchemaMigrationsSQL {
    /// Fixed DDL, run with the simple protocol before anything else.
    static let createTable = """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer     PRIMARY KEY,
            name       text        NOT NULL,
            checksum   text        NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """

    /// Held for the whole run, so that replicas starting together apply each file once.
    static let lock = PostgresStatement("schema_migrations.lock", "SELECT pg_advisory_lock($1::bigint)")
    static let unlock = PostgresStatement("schema_migrations.unlock", "SELECT pg_advisory_unlock($1::bigint)")

    static let applied = PostgresStatement("schema_migrations.applied", """
        SELECT version, name, checksum FROM schema_migrations ORDER BY version
        """)

    static let record = PostgresStatement("schema_migrations.record", """
        INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)
        """)

    /// SHA-256 of a migration's text, computed by the server so the client needs no crypto library.
    static let checksum = PostgresStatement("schema_migrations.checksum", """
        SELECT encode(sha256(convert_to($1::text, 'UTF8')), 'hex') AS checksum
        """)

    static let all = [lock, unlock, applied, record, checksum]
}
