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

    @Test("a member reads tasks (every column: SELECT *), participants, events, nodes and clusters, and is refused tokens, keys, idempotency digests and every write")
    func readsHistoryOnly() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1", "n2"], idempotencyKey: "k"),
                                              cluster: TaskStore.cluster).task
            let refusals = try await asReader(store) { connection in
                let readable = [
                    "SELECT * FROM tasks", "SELECT * FROM task_participants", "SELECT * FROM task_events", "SELECT * FROM nodes",
                    "SELECT * FROM clusters",
                ]
                for sql in readable { _ = try await connection.perform { try $0.query(sql) } }
                let events: Int = try await connection.perform {
                    try $0.query("SELECT count(*) AS n FROM task_events WHERE task_id = $1", [task.id]).single().decode("n")
                }
                #expect(events == 1)
                let refused = [
                    "SELECT * FROM signing_keys", "SELECT public_key FROM signing_keys", "SELECT * FROM api_tokens",
                    "SELECT * FROM task_idempotency_keys", "SELECT digest FROM task_idempotency_keys",
                    "SELECT * FROM tasks_finished_1", "SELECT * FROM history_partitions",
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
            #expect(refusals.count == 11)
            for (sql, code) in refusals { #expect(code == "42501", "\(sql): insufficient_privilege, got \(code ?? "nil")") }
        }
    }

    @Test("what a reader sees of a claimed, keyed task holds neither its lease nor its request's digest — only the lease's SHA-256")
    func noSecretInATaskRow() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: ["n1"], idempotencyKey: "k"),
                                              cluster: TaskStore.cluster).task
            let claim = try #require(try await store.queue.poll(cluster: TaskStore.cluster, node: "n1", limit: 1, lease: .seconds(30)).tasks.first)
            #expect(claim.task.id == task.id)
            let digest: String? = try await store.pool.withConnection { connection in
                try connection.query("SELECT digest FROM task_idempotency_keys WHERE task_id = $1", [task.id]).single().decode("digest")
            }
            let digestKept = try #require(digest)
            #expect(!digestKept.isEmpty)
            let seen = try await asReader(store) { connection in
                try await connection.perform { connection throws(PostgresError) in
                    try connection.query("""
                        SELECT position($2 IN t::text) > 0 AS lease_shown, position($3 IN t::text) > 0 AS digest_shown,
                               t.lease_hash = sha256(convert_to($2, 'UTF8')) AS hash_of_lease
                          FROM tasks t WHERE t.id = $1
                        """, [task.id, claim.lease, digestKept]).single()
                }
            }
            #expect(try seen.decode("lease_shown", as: Bool.self) == false)
            #expect(try seen.decode("digest_shown", as: Bool.self) == false)
            #expect(try seen.decode("hash_of_lease", as: Bool.self) == true)
        }
    }
}
