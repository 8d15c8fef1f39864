import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Concurrent claims")
struct ConcurrentClaimTests {
    @Test("8 concurrent claimers over 2,000 queued tasks: every task claimed exactly once")
    func eachTaskOnce() async throws {
        try await TestDatabase.withPool(maximumConnections: 8) { pool in
            let store = TaskStore(pool: pool)
            try await store.makeCluster()
            var submitted: [Int64] = []
            for _ in 0..<2 {
                submitted += try await store.submitBatch(
                    Array(repeating: TaskSubmission(type: "noop", participatingNodes: ["n1"]), count: 1000),
                    cluster: TaskStore.cluster).map(\.id)
            }
            let claims = try await withThrowingTaskGroup(of: [TaskRecord].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var mine: [TaskRecord] = []
                        while true {
                            let batch = try await store.claim(cluster: TaskStore.cluster, node: "n1", limit: 16, leaseSeconds: 30).map(\.task)
                            if batch.isEmpty { return mine }
                            mine += batch
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let claimed = claims.flatMap { $0 }.map(\.id)
            #expect(claimed.count == 2000)
            #expect(Set(claimed) == Set(submitted))
            #expect(claims.filter { !$0.isEmpty }.count > 1, "the claimers should have shared the work")
            #expect(claims.flatMap { $0 }.allSatisfy { $0.attempt == 1 && $0.state == .received })
            let claimEvents: Int = try await pool.withConnection { connection in
                try connection.query("SELECT count(*) AS n FROM task_events WHERE to_state = 'received'").single().decode("n")
            }
            #expect(claimEvents == 2000)
        }
    }
}
