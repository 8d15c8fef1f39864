import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Migrations")
struct MigrationTests {
    static let bundledNames = (try? Migration.bundled().map(\.name)) ?? []

    func recorded(_ pool: PostgresPool) async throws -> [String] {
        try await pool.withConnection { connection in
            try connection.query("SELECT name FROM schema_migrations ORDER BY version")
                .map { row throws(PostgresError) in try row.decode("name", as: String.self) }
        }
    }

    @Test("the binary carries migrations/*.sql")
    func bundled() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.sourceMigrationsFolder)
            .filter { $0.hasSuffix(".sql") }.sorted()
        #expect(!files.isEmpty)
        #expect(Self.bundledNames == files)
    }

    static var sourceMigrationsFolder: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appending(path: "migrations").path
    }

    @Test("applying twice is a no-op")
    func idempotent() async throws {
        try await TestDatabase.withEmptyDatabase { configuration in
            let pool = PostgresPool(configuration: configuration, options: .init(maximumConnections: 1))
            let first = try await Migrator.bundled().migrate(pool)
            #expect(first.applied == Self.bundledNames)
            let second = try await Migrator.bundled().migrate(pool)
            #expect(second.applied.isEmpty)
            #expect(second.alreadyApplied == Self.bundledNames)
            #expect(try await recorded(pool) == Self.bundledNames)
            await pool.close()
        }
    }

    @Test("two concurrent runs apply each file once")
    func concurrentRuns() async throws {
        try await TestDatabase.withEmptyDatabase { configuration in
            let pools = (0..<2).map { _ in PostgresPool(configuration: configuration, options: .init(maximumConnections: 1)) }
            let outcomes = try await withThrowingTaskGroup(of: Migrator.Outcome.self) { group in
                for pool in pools { group.addTask { try await Migrator.bundled().migrate(pool) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.flatMap(\.applied).sorted() == Self.bundledNames)
            #expect(try await recorded(pools[0]) == Self.bundledNames)
            for pool in pools { await pool.close() }
        }
    }

    @Test("a migration changed after it was applied stops the run")
    func changedFileIsRefused() async throws {
        try await TestDatabase.withEmptyDatabase { configuration in
            let pool = PostgresPool(configuration: configuration, options: .init(maximumConnections: 1))
            try await Migrator.bundled().migrate(pool)
            var edited = try Migration.bundled()
            edited[0] = Migration(version: edited[0].version, name: edited[0].name, sql: edited[0].sql + "\n-- edited\n")
            let error = try await #require(throws: TaskyardMigrationError.self) {
                try await Migrator(migrations: edited).migrate(pool)
            }
            #expect(error.description.contains("was changed after it was applied"))
            #expect(error.description.contains(edited[0].name))
            await pool.close()
        }
    }

    @Test("a failing migration is rolled back and not recorded")
    func failingMigrationRollsBack() async throws {
        try await TestDatabase.withEmptyDatabase { configuration in
            let pool = PostgresPool(configuration: configuration, options: .init(maximumConnections: 1))
            let broken = Migration(version: 9999, name: "9999_broken.sql",
                                   sql: "CREATE TABLE half_done (id int); SELECT 1 / 0;")
            let error = try await #require(throws: TaskyardMigrationError.self) {
                try await Migrator(migrations: try Migration.bundled() + [broken]).migrate(pool)
            }
            #expect(error.description.contains("9999_broken.sql"))
            #expect(error.description.contains("division by zero"))
            #expect(try await recorded(pool) == Self.bundledNames)
            let exists: Bool = try await pool.withConnection { connection in
                try connection.query("SELECT to_regclass('half_done') IS NOT NULL AS found").single().decode("found")
            }
            #expect(!exists)
            await pool.close()
        }
    }

    @Test("`taskyard migrate` applies the schema, then reports it up to date")
    func command() async throws {
        try await TestDatabase.withEmptyDatabase { configuration in
            let keywords = configuration.connectionString
            let first = try TestEnvironment.runTaskyard(["migrate", "--database-url", keywords])
            #expect(first.status == 0)
            #expect(first.output.contains("applied \(Self.bundledNames[0])"))
            let second = try TestEnvironment.runTaskyard(["migrate"], environment: ["TASKYARD_DATABASE_URL": keywords])
            #expect(second.status == 0)
            #expect(second.output.contains("0 applied now, \(Self.bundledNames.count) already applied"))
            let missing = try TestEnvironment.runTaskyard(["migrate"], environment: ["TASKYARD_DATABASE_URL": ""])
            #expect(missing.status != 0)
            #expect(missing.output.contains("--database-url"))
        }
    }

    @Test("0027 moves each keyed task's request digest beside its key, and submits after it are judged by it")
    func idempotencyDigestsMove() async throws {
        // Task 1 was made under key k by a request whose digest was D; task 2 under k0 before digests were kept.
        try await Self.migrating(to: 27, connections: 2, from: """
            INSERT INTO clusters (id) VALUES ('c1');
            INSERT INTO nodes (cluster_id, id, endpoint) VALUES ('c1', 'n1', 'http://127.0.0.1:9');
            INSERT INTO tasks (cluster_id, type, assigned_node, participating_nodes, idempotency_key, idempotency_digest)
                 VALUES ('c1', 'noop', 'n1', '{n1}', 'k', 'D'), ('c1', 'noop', 'n1', '{n1}', 'k0', NULL);
            INSERT INTO task_idempotency_keys (cluster_id, idempotency_key, task_id) VALUES ('c1', 'k', 1), ('c1', 'k0', 2);
            """) { pool in
            try await pool.withConnection { connection in
                let digests = try connection.query("SELECT idempotency_key || '=' || coalesce(digest, '-') AS kept FROM task_idempotency_keys ORDER BY task_id")
                    .map { row throws(PostgresError) in try row.decode("kept", as: String.self) }
                #expect(digests == ["k=D", "k0=-"])
                let left: Int = try connection.query("""
                    SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'idempotency_digest'
                    """).single().decode("n")
                #expect(left == 0, "tasks keeps no digest")
            }
            let store = TaskStore(pool: pool)
            let request = TaskSubmission(type: "noop", participatingNodes: ["n1"], idempotencyKey: "k")
            await #expect(throws: TaskyardError.self, "a request whose digest is not D is another request under k") {
                _ = try await store.submissions.submit(request, cluster: "c1")
            }
            var unchecked = request
            unchecked.idempotencyKey = "k0"
            let again = try await store.submissions.submit(unchecked, cluster: "c1")
            #expect(again.task.id == 2 && !again.created, "a key from before digests takes any request")
        }
    }

    @Test("0011 moves participant outcome rows out of tasks: marked and older ones, rollbacks apart; sub-tasks stay")
    func participantOutcomesMove() async throws {
        try await Self.migrating(to: 11, from: """
            INSERT INTO clusters (id) VALUES ('c1');
            INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, attempt, finished_at)
                 OVERRIDING SYSTEM VALUE VALUES ('c1', 'provision', 'failed', 'n1', '{n1,n2}', 1, now());
            -- A marked outcome with a rollback inside its result, an older unmarked one (born failed),
            -- and a sub-task a client submitted (born queued).
            INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, parent_id, attempt,
                               result, received_at, finished_at, outcome)
                 VALUES ('c1', 'provision', 'completed', 'n1', '{n1}', 1, 1,
                         '{"result": {"provisioned": "n1"}, "rollback": {"state": "completed", "result": {"released": "n1"}}}',
                         now() - interval '1 minute', now(), true);
            INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, parent_id, attempt, error, finished_at)
                 VALUES ('c1', 'provision', 'failed', 'n2', '{n2}', 1, 1, 'disk full', now());
            INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, parent_id, idempotency_key)
                 VALUES ('c1', 'cleanup', 'queued', 'n2', '{n2}', 1, 'k1');
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt)
                 SELECT cluster_id, id, NULL, CASE WHEN id = 1 OR type = 'cleanup' THEN 'queued' ELSE state END, assigned_node, attempt
                   FROM tasks;
            """) { pool in
            try await pool.withConnection { connection in
                let tasks = try connection.query("SELECT id, type FROM tasks ORDER BY id").map { row throws(PostgresError) in
                    "\(try row.decode("id", as: Int64.self)) \(try row.decode("type", as: String.self))"
                }
                #expect(tasks == ["1 provision", "4 cleanup"])
                // 0012: the rows are on their sides, the key in the key table, and ids go on after the last.
                let sides = try connection.query("SELECT tableoid::regclass::text AS side FROM tasks ORDER BY id")
                    .map { row throws(PostgresError) in try row.decode("side", as: String.self) }
                #expect(sides == ["tasks_finished_0", "tasks_live"], "0013: the history before it is the first range of ids")
                let keyed: Int64 = try connection.query("SELECT task_id FROM task_idempotency_keys WHERE idempotency_key = 'k1'").single().decode("task_id")
                #expect(keyed == 4)
                let next: Int64 = try connection.query("SELECT nextval('tasks_id_seq') AS id").single().decode("id")
                #expect(next == 5)
                let events: Int = try connection.query("SELECT count(*) AS n FROM task_events").single().decode("n")
                #expect(events == 2, "the outcome rows' events went with them")
                let outcomes = try connection.query("""
                    SELECT node || ' ' || attempt || ' ' || state || ' ' || coalesce(result::text, '-') || ' ' ||
                           coalesce(error, '-') || ' ' || coalesce(rollback::text, '-') || ' ' || (started_at IS NOT NULL) AS line
                      FROM task_participants WHERE cluster_id = 'c1' AND task_id = 1 ORDER BY node
                    """).map { row throws(PostgresError) in try row.decode("line", as: String.self) }
                #expect(outcomes == [
                    #"n1 1 completed {"provisioned": "n1"} - {"state": "completed", "result": {"released": "n1"}} true"#,
                    "n2 1 failed - disk full - false",
                ])
            }
        }
    }

    /// Runs `body` on a fresh database that met migration `version` with the rows `rows` (SQL, written against
    /// the schema before it) and was then migrated to the end: how a migration's move of data is tested.
    static func migrating(to version: Int, connections: Int = 1, from rows: String,
                          _ body: (PostgresPool) async throws -> Void) async throws {
        try await TestDatabase.withEmptyDatabase { configuration in
            let pool = PostgresPool(configuration: configuration, options: .init(maximumConnections: connections))
            do {
                try await Migrator(migrations: try Migration.bundled().filter { $0.version < version }).migrate(pool)
                try await pool.withConnection { connection in try connection.execute(rows) }
                try await Migrator.bundled().migrate(pool)
                try await body(pool)
            } catch {
                await pool.close()
                throw error
            }
            await pool.close()
        }
    }
}

