import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// The role the README gives analysts and BI tools: the task history, and nothing that signs, proves or
/// writes anything.
@Suite("The taskyard_reader role")
struct ReaderRoleTests {
    /// Runs `body` on a connection of a login user that is a member of `taskyard_reader`, made for the test.
    func asReader<T: Sendable>(_ store: TaskStore, _ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let user = "reader_\(UInt32.random(in: 0...UInt32.max))"
        try await store.pool.withConnection { connection in
            try connection.execute("CREATE ROLE \(try connection.quoteIdentifier(user)) LOGIN IN ROLE taskyard_reader")
        }
        var parameters = store.pool.configuration.parameters
        parameters["user"] = user
        let configuration = PostgresConfiguration(parameters: parameters)
        let result: Result<T, any Error>
        do {
            let connection = try await PostgresConnection.connect(configuration)
            do { result = .success(try await body(connection)) } catch { result = .failure(error) }
            await connection.close()
        }
        try await store.pool.withConnection { connection in
            try connection.execute("DROP ROLE \(try connection.quoteIdentifier(user))")
        }
        return try result.get()
    }

    @Test("a member reads tasks, participants, events, nodes and clusters, and is refused tokens, keys, idempotency digests, leases and every write")
    func readsHistoryOnly() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2"], idempotencyKey: "k"),
                                              cluster: TaskStore.cluster).task
            let refusals = try await asReader(store) { connection in
                let readable = [
                    "SELECT id, state, payload, result, error, created_at, finished_at, idempotency_key FROM tasks",
                    "SELECT * FROM task_participants", "SELECT * FROM task_events", "SELECT * FROM nodes", "SELECT * FROM clusters",
                ]
                for sql in readable { _ = try await connection.perform { try $0.query(sql) } }
                let events: Int = try await connection.perform {
                    try $0.query("SELECT count(*) AS n FROM task_events WHERE task_id = $1", [task.id]).single().decode("n")
                }
                #expect(events == 1)
                let refused = [
                    "SELECT * FROM signing_keys", "SELECT public_key FROM signing_keys", "SELECT * FROM api_tokens",
                    "SELECT * FROM task_idempotency_keys", "SELECT idempotency_digest FROM tasks", "SELECT lease_hash FROM tasks",
                    "SELECT * FROM tasks", "SELECT * FROM tasks_finished_1", "SELECT * FROM history_partitions",
                    "UPDATE tasks SET state = 'failed'", "DELETE FROM task_events", "INSERT INTO clusters (id, name) VALUES ('x', 'x')",
                    "SELECT taskyard_retire_history_partition(now())",
                ]
                var codes: [String: String?] = [:]
                for sql in refused {
                    do {
                        _ = try await connection.perform { try $0.query(sql) }
                        codes[sql] = "answered"
                    } catch let error as PostgresError {
                        codes[sql] = error.sqlState
                    }
                }
                return codes
            }
            #expect(refusals.count == 13)
            for (sql, code) in refusals { #expect(code == "42501", "\(sql): insufficient_privilege, got \(code ?? "nil")") }
        }
    }

    @Test("every column of tasks is granted but its lease and idempotency digests: a column added later is not forgotten")
    func everyColumnButTheSecrets() async throws {
        try await TestDatabase.withStore { store in
            let missing: [String] = try await store.pool.withConnection { connection in
                try connection.query("""
                    SELECT c.column_name AS name FROM information_schema.columns c
                     WHERE c.table_schema = 'public' AND c.table_name = 'tasks'
                       AND NOT has_column_privilege('taskyard_reader', 'tasks', c.column_name, 'SELECT')
                     ORDER BY c.column_name
                    """).map { row throws(PostgresError) in try row.decode("name", as: String.self) }
            }
            #expect(missing == ["idempotency_digest", "lease_hash"])
        }
    }
}
