import Foundation
import Postgres
import Testing
import TaskyardTestSupport

@Suite("Serialization conflicts and deadlocks")
struct ConflictRetryTests {
    /// A function that fails with `sqlState` the first `failures` times it runs, counted by a sequence.
    static let flaky = """
        CREATE SEQUENCE flaky_calls;
        CREATE FUNCTION flaky(code text, failures int) RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE n bigint := nextval('flaky_calls');
        BEGIN
            IF n <= failures THEN RAISE EXCEPTION 'conflict %', n USING ERRCODE = code; END IF;
            RETURN n;
        END $$;
        """

    @Test("a statement alone that loses a deadlock or a serialization conflict runs again; inside a transaction it does not")
    func retriedOnlyOutsideTransactions() async throws {
        try await TestDatabase.withPool { pool in
            try await pool.withConnection { connection in try connection.execute(Self.flaky) }
            for code in ["40001", "40P01"] {
                let call: Int64 = try await pool.withConnection { connection in
                    try connection.execute("SELECT setval('flaky_calls', 1, false)")
                    return try connection.query("SELECT flaky($1, 2) AS n", [code]).single().decode("n")
                }
                #expect(call == 3, "two conflicts, then the third run succeeded")
            }
            let error = await #expect(throws: PostgresError.self) {
                try await pool.transaction { connection in
                    try connection.execute("SELECT setval('flaky_calls', 1, false)")
                    _ = try connection.query("SELECT flaky('40001', 1) AS n")
                }
            }
            #expect(error?.sqlState == "40001")
            #expect(error?.sqlClass == .transient)
            // Four conflicts in a row are more than a statement is retried for.
            let persistent = await #expect(throws: PostgresError.self) {
                try await pool.withConnection { connection in
                    try connection.execute("SELECT setval('flaky_calls', 1, false)")
                    _ = try connection.query("SELECT flaky('40P01', 10) AS n")
                }
            }
            #expect(persistent?.isRetryable == true)
        }
    }

    @Test("an error from a read-only server (a standby after failover) retires its connection")
    func readOnlyRetiresConnection() async throws {
        try await TestDatabase.withPool { pool in
            let broken: Bool = try await pool.withConnection { connection in
                try connection.execute("SET default_transaction_read_only = on")
                do {
                    _ = try connection.query("CREATE TABLE never_written (x int)")
                } catch let error as PostgresError {
                    #expect(error.sqlState == "25006")
                    #expect(error.sqlClass == .transient)
                }
                return connection.isBroken
            }
            #expect(broken, "the pool drops it instead of handing it out again")
            let writable: Bool = try await pool.withConnection { connection in
                try connection.query("SHOW default_transaction_read_only").single().decode("default_transaction_read_only", as: String.self) == "off"
            }
            #expect(writable)
        }
    }
}
