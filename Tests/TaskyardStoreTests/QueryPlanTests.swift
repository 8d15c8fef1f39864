import Foundation
import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// Hot-path cost must not grow with finished history: the claim, report, heartbeat and list statements
/// read `tasks` through indexes, never the whole table, in the custom plans PostgreSQL makes for the
/// first executions of a prepared statement and in the generic plan it switches to after five (where a
/// `LIMIT $n` is unknown and joins are costed for a tenth of the table).
@Suite("Query plans")
struct QueryPlanTests {
    /// A small table is where a planner likes a sequential scan best (and, under a queue's churn, where
    /// its statistics lag the most); a long history is where one would hurt.
    @Test("the hot statements read tasks through indexes, custom and generic plans, with and without history",
          arguments: [0, 50_000])
    func hotStatementsUseIndexes(history: Int) async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            try await store.pool.withConnection { connection in
                // Finished history and a queue, written straight in SQL for speed.
                try connection.query("""
                    INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, attempt,
                                       finished_at)
                    SELECT $1, 'noop', 'completed', 'n' || (1 + g % 3), ARRAY['n' || (1 + g % 3)], 1, now()
                      FROM generate_series(1, $2) AS g
                    """, [TaskStore.cluster, history])
                try connection.query("""
                    INSERT INTO tasks (cluster_id, type, assigned_node, participating_nodes)
                    SELECT $1, 'noop', 'n1', ARRAY['n1'] FROM generate_series(1, 2000)
                    """, [TaskStore.cluster])
            }
            let held = try await store.claim(cluster: TaskStore.cluster, node: "n1", limit: 300, leaseSeconds: 30)
            #expect(held.count == 300)
            try await store.pool.withConnection { connection in try connection.execute("ANALYZE tasks") }
            let none: String? = nil
            let noDate: Date? = nil
            let ids = held.prefix(200).map(\.id)
            let leases = held.prefix(200).map(\.lease)
            let statements: [(String, [any PostgresEncodable])] = [
                ("tasks.poll", [TaskStore.cluster, "n1", 256, 30.0, [String](), [Double](), true]),
                ("tasks.report", [
                    TaskStore.cluster, "n1", ids, ids.map { _ in 1 }, ids.map { _ in "completed" }, ids.map { _ in none },
                    ids.map { _ in none }, ids.map { _ in none }, ids.map { _ in 1.0 }, ids.indices.map { Int64($0 + 1) },
                    ids.map { _ in "n1" }, ids.map { _ in "completed" }, ids.map { _ in none }, ids.map { _ in none },
                    ids.map { _ in noDate }, ids.map { _ in noDate }, leases,
                ]),
                ("tasks.renew_leases", [TaskStore.cluster, "n1", ids, ids.map { _ in 1 }, ids.map { _ in none }, 30.0, leases]),
                ("tasks.expire_leases", [500]),
                ("tasks.list", [TaskStore.cluster, [String]?.none, none, none, noDate, noDate, false, Int64?.none, none, false,
                                Int64(0), 51]),
            ]
            for (name, parameters) in statements {
                let plans = try await store.pool.withConnection { connection in
                    try connection.transaction { connection in
                        [try connection.explain(name, parameters, generic: false),
                         try connection.explain(name, parameters, generic: true)]
                    }
                }
                for plan in plans {
                    #expect(!plan.contains("Seq Scan on tasks"), "\(name): \(plan)")
                }
                if name == "tasks.poll" {
                    #expect(plans.allSatisfy { $0.contains("tasks_claim_idx") && $0.contains("Tid Scan on tasks") }, "\(plans)")
                }
            }
            let claimed = try await store.claim(cluster: TaskStore.cluster, node: "n1", limit: 16, leaseSeconds: 30)
            #expect(claimed.count == 16)
        }
    }
}

extension PostgresConnection {
    /// The plan of one of the store's statements with these parameters, as text: the custom plan, or the
    /// generic one a prepared statement gets after five executions.
    func explain(_ statement: String, _ parameters: [any PostgresEncodable], generic: Bool) throws -> String {
        let sql = StoreStatements.all.first { $0.name == statement }!.sql
        let lines: PostgresRows
        if generic {
            let name = "explained_" + statement.replacingOccurrences(of: ".", with: "_")
            try execute("SET LOCAL plan_cache_mode = force_generic_plan")
            try execute("PREPARE \(name) AS " + sql)
            defer { try? execute("DEALLOCATE \(name)") }
            // EXPLAIN EXECUTE takes no bind parameters: the test's own constants are written as literals.
            let literals = parameters.map { parameter in
                parameter.postgresText.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" } ?? "NULL"
            }
            lines = try query("EXPLAIN EXECUTE \(name)(\(literals.joined(separator: ", ")))")
        } else {
            lines = try query("EXPLAIN " + sql, parameters)
        }
        return try lines.map { row throws(PostgresError) in try row.decode(column: 0, as: String.self) }.joined(separator: "\n")
    }
}
