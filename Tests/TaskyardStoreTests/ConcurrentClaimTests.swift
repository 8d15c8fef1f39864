import Foundation
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
                submitted += try await store.submissions.submitBatch(
                    Array(repeating: TaskSubmission(type: "noop", participatingNodes: ["n1"]), count: 1000),
                    cluster: TaskStore.cluster).map(\.id)
            }
            let claims = try await withThrowingTaskGroup(of: [TaskRecord].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var mine: [TaskRecord] = []
                        while true {
                            let batch = try await store.queue.claim(cluster: TaskStore.cluster, node: "n1", limit: 16, lease: .seconds(30)).map(\.task)
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

@Suite("Reports and heartbeats of one node")
struct ReportHeartbeatLockOrderTests {
    /// A node's reports and heartbeats update the same rows; each locking them in its own plan's order
    /// they deadlocked (a second's stall each, then a retry). Both now lock in id order.
    @Test("heartbeats over every held task while reports end them in shuffled batches: no deadlock, every report written")
    func noDeadlock() async throws {
        try await TestDatabase.withPool(maximumConnections: 8) { pool in
            let store = TaskStore(pool: pool)
            try await store.makeCluster()
            _ = try await store.submissions.submitBatch(Array(repeating: TaskSubmission(type: "noop", participatingNodes: ["n1"]), count: 600),
                                            cluster: TaskStore.cluster)
            let claims = try await store.queue.claim(cluster: TaskStore.cluster, node: "n1", limit: 600, lease: .seconds(60))
            #expect(claims.count == 600)
            func deadlocks() async throws -> Int {
                try await pool.withConnection { connection in
                    _ = try connection.query("SELECT pg_stat_force_next_flush()")
                    return try connection.query("SELECT deadlocks::integer AS n FROM pg_stat_database WHERE datname = current_database()")
                        .single().decode("n")
                }
            }
            let before = try await deadlocks()
            let held = claims.map { HeldTask(id: $0.task.id, attempt: $0.task.attempt, lease: $0.lease) }
            let shuffled = claims.shuffled()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        for _ in 0..<10 {
                            // Newest first: the opposite of what an ordered plan would do.
                            _ = try await store.queue.renewLeases(cluster: TaskStore.cluster, node: "n1", tasks: held.reversed(), lease: .seconds(60))
                        }
                    }
                }
                for chunk in stride(from: 0, to: 600, by: 50).map({ Array(shuffled[$0..<($0 + 50)]) }) {
                    group.addTask {
                        let reports = chunk.map { claim in
                            (claim.task.id, TaskReport(attempt: claim.task.attempt, lease: claim.lease, state: .completed, result: nil,
                                                       participants: [ParticipantOutcome(node: "n1", state: .completed, result: nil,
                                                                                         startedAt: Date(), finishedAt: Date())]))
                        }
                        _ = try await store.queue.reportBatch(reports, cluster: TaskStore.cluster, node: "n1")
                    }
                }
                try await group.waitForAll()
            }
            let completed: Int = try await pool.withConnection { connection in
                try connection.query("SELECT count(*)::integer AS n FROM tasks WHERE parent_id IS NULL AND state = 'completed'").single().decode("n")
            }
            #expect(completed == 600)
            // Backends send their statistics within a second or so.
            try await Task.sleep(for: .seconds(1.5))
            #expect(try await deadlocks() == before)
        }
    }
}
