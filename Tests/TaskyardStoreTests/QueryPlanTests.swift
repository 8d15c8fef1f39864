import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// Claim cost must not grow with finished history: the claim reads the partial index over queued tasks,
/// never the whole table.
@Suite("Query plans")
struct QueryPlanTests {
    @Test("the claim reads tasks through the partial index, also with 100,000 finished tasks")
    func claimUsesPartialIndex() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            try await store.pool.withConnection { connection in
                // Finished history, written straight in SQL for speed.
                try connection.query("""
                    INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, attempt,
                                       finished_at)
                    SELECT $1, 'noop', 'completed', 'n' || (1 + g % 3), ARRAY['n' || (1 + g % 3)], 1, now()
                      FROM generate_series(1, 100000) AS g
                    """, [TaskStore.cluster])
                try connection.execute("ANALYZE tasks")
            }
            _ = try await store.submit(on: ["n1"])
            let plan: String = try await store.pool.withConnection { connection in
                let rows = try connection.query("EXPLAIN (FORMAT TEXT) " + StoreStatementsForTests.claimSQL,
                                                [TaskStore.cluster, "n1", 16, 30.0, [String](), [Double]()])
                return try rows.map { row throws(PostgresError) in try row.decode(column: 0, as: String.self) }
                    .joined(separator: "\n")
            }
            #expect(plan.contains("tasks_claim_idx"), "\(plan)")
            #expect(!plan.contains("Seq Scan on tasks"), "\(plan)")
            let claimed = try await store.claim(cluster: TaskStore.cluster, node: "n1", limit: 16, leaseSeconds: 30)
            #expect(claimed.count == 1)
        }
    }
}

enum StoreStatementsForTests {
    static var claimSQL: String {
        StoreStatements.all.first { $0.name == "tasks.claim" }!.sql
    }
}
