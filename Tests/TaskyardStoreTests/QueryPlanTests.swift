import Foundation
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
            let plans = try await store.pool.withConnection { connection in
                [
                    "poll": try connection.explain("tasks.poll", [TaskStore.cluster, "n1", 16, 30.0, [String](), [Double]()]),
                    "report": try connection.explain("tasks.report", [
                        TaskStore.cluster, "n1", [Int64(100_001)], [1], ["completed"], [String?.none], [String?.none],
                        [String?.none], [1.0], [Int64(1)], ["n1"], ["completed"], [String?.none], [String?.none],
                        [Date?.none], [Date?.none],
                    ]),
                    "list": try connection.explain("tasks.list", [
                        TaskStore.cluster, [String]?.none, String?.none, String?.none, Date?.none, Date?.none, false,
                        Int64?.none, String?.none, false, Int64(0), 51,
                    ]),
                ]
            }
            #expect(plans["poll"]!.contains("tasks_claim_idx"), "\(plans["poll"]!)")
            for (name, plan) in plans {
                #expect(!plan.contains("Seq Scan on tasks"), "\(name): \(plan)")
            }
            let claimed = try await store.claim(cluster: TaskStore.cluster, node: "n1", limit: 16, leaseSeconds: 30)
            #expect(claimed.count == 1)
        }
    }
}

extension PostgresConnection {
    /// The plan of one of the store's statements with these parameters, as text.
    func explain(_ statement: String, _ parameters: [any PostgresEncodable]) throws -> String {
        let sql = StoreStatements.all.first { $0.name == statement }!.sql
        return try query("EXPLAIN (FORMAT TEXT) " + sql, parameters)
            .map { row throws(PostgresError) in try row.decode(column: 0, as: String.self) }
            .joined(separator: "\n")
    }
}
