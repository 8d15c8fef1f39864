import EmbeddedPostgres
import Foundation
import Postgres
import Synchronization
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardStore
import TaskyardTestSupport

@Suite("PostgreSQL restarts")
struct DatabaseRestartTests {
    @Test("restart PostgreSQL under a steady submit and work load: every accepted task exists once and completes once")
    func restartUnderLoad() async throws {
        try await TestDatabase.withPrivateServer { server in
            let store = try await server.migratedStore(connections: 10)
            // A claim that commits as the database goes down never reaches its agent: its lease brings the
            // task back. Short leases (and heartbeats to match) keep that wait short.
            try await Deployment.run(on: store, agentSettings: { $0.heartbeatInterval = .milliseconds(500) },
                                     serverSettings: { $0.lease = .seconds(3); $0.leaseExpirer.interval = .milliseconds(200) }) { deployment in
                let accepted = Mutex<[Int64]>([])
                let refusals = Mutex(0)
                let total = 300
                // A client that submits steadily; each request carries an Idempotency-Key, and is repeated
                // until it gets an answer, as a careful client does when its database is restarting.
                let submitter = Task {
                    for index in 0..<total {
                        while true {
                            do {
                                let task = try await deployment.client.submit(cluster: "c1",
                                    SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n2", "n3"].shuffled().dropLast(index % 3).map { $0 },
                                                      payload: ["i": .integer(Int64(index))]),
                                    idempotencyKey: "load-\(index)")
                                accepted.withLock { $0.append(task.id) }
                                break
                            } catch {
                                refusals.withLock { $0 += 1 }
                                try await Task.sleep(for: .milliseconds(100))
                            }
                        }
                        try await Task.sleep(for: .milliseconds(5))
                    }
                }
                // Generous: the whole suite shares two cores with this load while it starts.
                try await eventually("a third of the load is in", within: .seconds(120)) { accepted.withLock { $0.count } >= total / 3 }
                try server.stop(mode: .fast)
                try await Task.sleep(for: .milliseconds(500))
                try server.start()
                try await submitter.value

                let ids = accepted.withLock { $0 }
                #expect(ids.count == total)
                #expect(Set(ids).count == total, "an accepted task was answered twice with different ids")
                for id in ids {
                    #expect(try await deployment.finished(id, within: .seconds(90)).task.state == .completed)
                }
                let (roots, completions): (Int, Int) = try await store.pool.withConnection { connection in
                    let roots: Int = try connection.query("SELECT count(*) AS n FROM tasks WHERE parent_id IS NULL").single().decode("n")
                    let completions: Int = try connection.query("""
                        SELECT count(*) AS n FROM task_events e JOIN tasks t ON t.cluster_id = e.cluster_id AND t.id = e.task_id
                         WHERE t.parent_id IS NULL AND e.to_state = 'completed'
                        """).single().decode("n")
                    return (roots, completions)
                }
                #expect(roots == total, "no task lost or duplicated")
                #expect(completions == total, "each task completed exactly once")
                #expect(refusals.withLock { $0 } > 0, "the restart should have been felt by the client")
            }
            await store.close()
        }
    }
}
