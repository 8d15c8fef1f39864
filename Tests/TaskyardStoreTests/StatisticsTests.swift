import Postgres
import Testing
import TaskyardStore
import TaskyardTestSupport

@Suite("Planner statistics")
struct StatisticsTests {
    @Test("a tasks partition that outgrew what the planner believes is analyzed, once")
    func staleStatisticsAreRefreshed() async throws {
        try await TestDatabase.withStore { store in
            try await store.makeCluster()
            try await store.pool.withConnection { connection in
                try connection.execute("ANALYZE tasks")
                try connection.query("""
                    INSERT INTO tasks (cluster_id, type, state, assigned_node, participating_nodes, attempt, finished_at)
                    SELECT $1, 'noop', 'completed', 'n1', ARRAY['n1'], 1, now() FROM generate_series(1, 5000)
                    """, [TaskStore.cluster])
                // Counters reach the statistics collector at most once a second; this one is a test.
                try connection.query("SELECT pg_stat_force_next_flush()")
                try connection.query("SELECT 1")
            }
            let plannedBefore = try await Self.plannedRows(store)
            #expect(plannedBefore < 1000)
            #expect(try await store.maintenance.refreshStaleStatistics() == ["tasks_finished_1"], "the first range of ids")
            #expect(try await Self.plannedRows(store) >= 4000, "ANALYZE told the planner about the new rows")
            #expect(try await store.maintenance.refreshStaleStatistics().isEmpty, "nothing to do until the table doubles again")
        }
    }

    static func plannedRows(_ store: TaskStore) async throws -> Double {
        try await store.pool.withConnection { connection in
            try connection.query("SELECT reltuples::float8 AS rows FROM pg_class WHERE oid = 'tasks_finished_1'::regclass")
                .single().decode("rows")
        }
    }
}
