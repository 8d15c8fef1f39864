import EmbeddedPostgres
import Foundation
import Postgres
import Testing
import TaskyardTestSupport

@Suite("Connection pool")
struct PoolTests {
    @Test("checkout times out cleanly when every connection is in use, and the pool recovers")
    func checkoutTimeout() async throws {
        try await TestDatabase.withPool(maximumConnections: 1, checkoutTimeout: .milliseconds(300)) { pool in
            let holder = Task { try await pool.withConnection { connection in try connection.query("SELECT pg_sleep(1.5)") } }
            try await Task.sleep(for: .milliseconds(200))
            let error = try await #require(throws: PostgresError.self) {
                try await pool.withConnection { connection in try connection.query("SELECT 1") }
            }
            #expect(error.kind == .poolTimeout)
            #expect(pool.statistics.waiting == 0)
            _ = try await holder.value
            let one: Int = try await pool.query(PostgresStatement("test.one", "SELECT 1 AS one")).single().decode("one")
            #expect(one == 1)
            #expect(pool.statistics.open == 1)
        }
    }

    @Test("waiting checkouts get connections in turn")
    func waitersAreServed() async throws {
        try await TestDatabase.withPool(maximumConnections: 2) { pool in
            let sums = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<20 {
                    group.addTask {
                        try await pool.withConnection { connection in
                            try connection.query("SELECT pg_sleep(0.01), $1::int AS n", [n]).single().decode("n")
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(sums == (0..<20).reduce(0, +))
            #expect(pool.statistics.open <= 2)
        }
    }

    @Test("a connection killed by the server is replaced")
    func terminatedConnectionIsReplaced() async throws {
        try await TestDatabase.withPool(maximumConnections: 1) { pool in
            let firstPID: Int32 = try await pool.query(PostgresStatement("test.pid", "SELECT pg_backend_pid() AS pid")).single().decode("pid")
            // Kill it from another connection, as an administrator or a crash would.
            let killer = try await PostgresConnection.connect(pool.configuration)
            _ = try await killer.perform { connection in try connection.query("SELECT pg_terminate_backend($1::int)", [firstPID]) }
            await killer.close()
            try await Task.sleep(for: .milliseconds(100))
            let secondPID: Int32 = try await pool.query(PostgresStatement("test.pid", "SELECT pg_backend_pid() AS pid")).single().decode("pid")
            #expect(secondPID != firstPID)
        }
    }

    @Test("queries succeed after PostgreSQL restarts, and fail clearly while it is down")
    func survivesServerRestart() async throws {
        try await TestDatabase.withPrivateServer { server in
            let pool = PostgresPool(configuration: server.configuration(), options: .init(maximumConnections: 3))
            let statement = PostgresStatement("test.answer", "SELECT 42 AS answer")
            // Open every connection so that all of them are stale after the restart.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 { group.addTask { _ = try await pool.withConnection { c in try c.query("SELECT pg_sleep(0.05)") } } }
                try await group.waitForAll()
            }
            #expect(pool.statistics.open == 3)

            try server.stop(mode: .fast)
            let down = try await #require(throws: PostgresError.self) { try await pool.query(statement) }
            #expect(down.kind == .connection)

            try server.start()
            for _ in 0..<5 {
                let answer: Int = try await pool.query(statement).single().decode("answer")
                #expect(answer == 42)
            }
            await pool.close()
        }
    }
}

@Suite("Connection pool hygiene")
struct PoolHygieneTests {
    @Test("a connection left inside a transaction is not handed out again; close drops every connection")
    func abandonedTransaction() async throws {
        try await TestDatabase.withPool(maximumConnections: 1) { pool in
            // A caller that opens a transaction by hand and forgets to end it.
            try await pool.withConnection { connection in
                try connection.execute("BEGIN; CREATE TEMPORARY TABLE leaked (x int)")
            }
            let status: String = try await pool.withConnection { connection in
                try connection.query("SELECT CASE WHEN to_regclass('pg_temp.leaked') IS NULL THEN 'fresh' ELSE 'inherited' END AS status")
                    .single().decode("status")
            }
            #expect(status == "fresh", "the next user must not inherit the open transaction")
            #expect(pool.statistics.open == 1)
            await pool.close()
            #expect(pool.statistics.open == 0 && pool.statistics.idle == 0)
            let closed = try await #require(throws: PostgresError.self) { try await pool.withConnection { c in try c.query("SELECT 1") } }
            #expect(closed.kind == .closed)
        }
    }
}

extension PoolTests {
    @Test("a connection past its lifetime is closed when it comes back, and the next checkout opens a fresh one")
    func connectionsRetireWithAge() async throws {
        try await TestDatabase.withDatabase { configuration in
            let pool = PostgresPool(configuration: configuration,
                                    options: .init(maximumConnections: 1, maximumConnectionLifetime: .milliseconds(200)))
            let pid: () async throws -> Int32 = {
                try await pool.withConnection { connection in
                    try connection.query("SELECT pg_backend_pid() AS pid").single().decode("pid")
                }
            }
            let first = try await pid()
            #expect(try await pid() == first, "young: reused")
            try await Task.sleep(for: .milliseconds(300))
            _ = try await pid()  // comes back past its lifetime
            #expect(try await pid() != first, "old: replaced")
            await pool.close()
        }
    }
}
