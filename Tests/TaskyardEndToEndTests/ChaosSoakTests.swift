import EmbeddedPostgres
import Foundation
import Postgres
import Synchronization
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

@Suite("Chaos soak")
struct ChaosSoakTests {
    final class Accepted: Sendable {
        let ids = Mutex<[Int64]>([])
    }

    /// The load: tasks of 1 to 3 participants (those of 3 done at a quorum), each sent until answered (with
    /// its Idempotency-Key), to the servers in turn.
    static func submit(_ total: Int, to clients: [TaskyardClient], recording accepted: Accepted) async throws {
        let nodes = ["n1", "n2", "n3"]
        for index in 0..<total {
            let request = SubmitTaskRequest(type: ["noop", "echo", "sleep"][index % 3],
                                            participatingNodes: Array(nodes.shuffled().prefix(1 + index % 3)),
                                            payload: index % 3 == 2 ? ["seconds": 0.2] : ["i": .integer(Int64(index))],
                                            maxAttempts: 10, completeWhen: index % 3 == 2 ? "quorum" : nil)
            while true {
                do {
                    let task = try await clients[index % clients.count].submit(cluster: "c1", request, idempotencyKey: "soak-\(index)")
                    accepted.ids.withLock { $0.append(task.id) }
                    break
                } catch {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            try await Task.sleep(for: .milliseconds(15))
        }
    }

    /// What the soak checks once every task ended, each a count that must come out as expected.
    static let invariantQueries: [String: String] = [
            "roots": ("SELECT count(*) AS n FROM tasks WHERE parent_id IS NULL"),
            "completed": ("SELECT count(*) AS n FROM tasks WHERE parent_id IS NULL AND state = 'completed'"),
            "failed": ("SELECT count(*) AS n FROM tasks WHERE parent_id IS NULL AND state = 'failed'"),
            "stuck": ("SELECT count(*) AS n FROM tasks WHERE parent_id IS NULL AND state IN ('queued', 'received')"),
            // A task reaching a terminal state more than once.
            "doubled": ("""
                SELECT count(*) AS n FROM (
                    SELECT e.task_id FROM task_events e JOIN tasks t ON t.cluster_id = e.cluster_id AND t.id = e.task_id
                     WHERE t.parent_id IS NULL AND e.to_state IN ('completed', 'failed', 'cancelled')
                     GROUP BY e.task_id HAVING count(*) > 1) d
                """),
            // A move out of received at another attempt than the claim just before it: a stale report.
            "stale": ("""
                SELECT count(*) AS n FROM (
                    SELECT from_state, attempt, lag(to_state) OVER w AS previous_to, lag(attempt) OVER w AS previous_attempt
                      FROM task_events WINDOW w AS (PARTITION BY cluster_id, task_id ORDER BY id)) e
                 WHERE from_state = 'received' AND (previous_to IS DISTINCT FROM 'received' OR previous_attempt <> attempt)
                """),
        // A completed task of policy all with a node whose latest outcome is not completed (a re-driven
        // attempt carries forward the completed outcomes of earlier attempts).
        "unrun": ("""
            SELECT count(*) AS n FROM tasks t, unnest(t.participating_nodes) AS p (node)
             WHERE t.parent_id IS NULL AND t.state = 'completed' AND t.complete_when = 'all' AND NOT EXISTS (
                   SELECT 1 FROM (SELECT c.state FROM task_participants c
                                   WHERE c.cluster_id = t.cluster_id AND c.task_id = t.id AND c.node = p.node
                                   ORDER BY c.attempt DESC LIMIT 1) latest
                    WHERE latest.state = 'completed')
            """),
        // A completed quorum task without a majority of completed latest outcomes.
        "short of quorum": ("""
            SELECT count(*) AS n FROM tasks t
             WHERE t.parent_id IS NULL AND t.state = 'completed' AND t.complete_when = 'quorum'
               AND (SELECT count(*) FROM (SELECT DISTINCT ON (c.node) c.state FROM task_participants c
                                           WHERE c.cluster_id = t.cluster_id AND c.task_id = t.id
                                           ORDER BY c.node, c.attempt DESC) latest
                     WHERE latest.state = 'completed') < cardinality(t.participating_nodes) / 2 + 1
            """),
        "quorum": ("SELECT count(*) AS n FROM tasks WHERE parent_id IS NULL AND complete_when = 'quorum'"),
        "retried": ("SELECT count(*) AS n FROM tasks WHERE parent_id IS NULL AND attempt > 1"),
        // Slots still counted once every task has ended.
        "slots held": ("SELECT coalesce(sum(used), 0)::integer AS n FROM admission_slot_counts"),
    ]

    static func invariants(_ pool: PostgresPool) async throws -> [String: Int] {
        try await pool.withConnection { connection in
            var counts: [String: Int] = [:]
            for (name, sql) in invariantQueries { counts[name] = try connection.query(sql).single().decode("n") }
            return counts
        }
    }

    /// Which of the servers holds the maintenance leader's lock.
    static func maintenanceLeader(among clients: [TaskyardClient]) async throws -> Int {
        var leader: Int?
        try await eventually("a server leads maintenance", within: .seconds(30)) {
            for (index, client) in clients.enumerated() where (try? await client.healthBody())?.maintenanceLeader == true {
                leader = index
            }
            return leader != nil
        }
        return leader!
    }

    /// Every accepted task ends, once, run by all its nodes, and no stale report was taken.
    static func checkEveryTaskEndedOnce(_ pool: PostgresPool, accepted ids: [Int64], of total: Int, faults: [String]) async throws {
        // Every accepted task ends.
        try await eventually("every accepted task is finished", within: .seconds(180)) {
            let live: Int = try await pool.withConnection { connection in
                try connection.query("SELECT count(*) AS n FROM tasks WHERE parent_id IS NULL AND state IN ('queued', 'received')")
                    .single().decode("n")
            }
            return live == 0
        }
        let counts = try await invariants(pool)
        print("chaos soak: \(ids.count) tasks accepted of \(total); faults: \(faults.joined(separator: ", ")); "
              + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        #expect(ids.count == total)
        #expect(Set(ids).count == total, "an accepted task was answered twice with different ids")
        #expect(counts["roots"] == total, "lost or duplicated tasks")
        #expect(counts["stuck"] == 0)
        #expect(counts["doubled"] == 0)
        #expect(counts["stale"] == 0)
        #expect(counts["unrun"] == 0)
        #expect(counts["short of quorum"] == 0)
        #expect(counts["quorum"] == total / 3)
        #expect(counts["slots held"] == 0)
        #expect(counts["completed"]! + counts["failed"]! == total)
    }

    /// Samples, until cancelled, how many received tasks each node takes part in against its capacity; the
    /// samples and every one that found a node over (a database restart only skips samples).
    final class CapacitySampler: Sendable {
        let samples = Atomic<Int>(0)
        let over = Mutex<[String]>([])
        let busiest = Atomic<Int>(0)

        func run(_ pool: PostgresPool) async {
            while !Task.isCancelled {
                let rows = try? await pool.withConnection { connection in
                    try connection.query("""
                        SELECT n.id, n.capacity,
                               (SELECT count(*) FROM tasks t
                                 WHERE t.cluster_id = n.cluster_id AND t.state = 'received'
                                   AND n.id = ANY (array_append(coalesce(t.attempt_nodes, t.participating_nodes), t.assigned_node)))::integer AS taking_part
                          FROM nodes n
                        """).map { row throws(PostgresError) in
                        (try row.decode("id", as: String.self), try row.decode("capacity", as: Int.self), try row.decode("taking_part", as: Int.self))
                    }
                }
                if let rows {
                    samples.add(1, ordering: .relaxed)
                    for (node, capacity, takingPart) in rows {
                        _ = busiest.max(takingPart, ordering: .relaxed)
                        if takingPart > capacity { over.withLock { $0.append("\(node): \(takingPart) of \(capacity)") } }
                    }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// Each node's capacity: small enough that the load fills it, so that gang admission decides claims.
    static let capacity = 3

    @Test("steady load on 2 servers and 3 agents (processes) while an agent is killed, another paused past its lease, the maintenance leader killed and PostgreSQL restarted: every accepted task ends once, none stuck, none doubled, no stale report accepted, no node over its capacity")
    func soak() async throws {
        try await TestDatabase.withPrivateServer { database in
            let store = try await database.migratedStore(connections: 4)
            _ = try await store.clusters.createCluster(id: "c1", name: "soak")
            let url = database.configuration().connectionString
            let ports = TestEnvironment.freePorts(5)
            func serve(_ port: Int) throws -> TaskyardProcess {
                try TaskyardProcess.start(["serve", "--key-file", TestEnvironment.keyFilePath, "--database-url", url, "--listen", "127.0.0.1:\(port)", "--lease-seconds", "2",
                                           "--retry-backoff-base", "0.2", "--retry-backoff-cap", "1", "--log-level", "warning"],
                                          name: "soak-serve-\(port)")
            }
            var servers = [try serve(ports[0]), try serve(ports[1])]
            let urls = ports[0..<2].map { "http://127.0.0.1:\($0)" }
            let admin = try await store.mintToken(scopes: [.admin])
            let clients = urls.map { TaskyardClient(baseURL: $0, token: admin) }
            try await eventually("both servers answer", within: .seconds(60)) {
                var up = 0
                for client in clients where (try? await client.healthBody()) != nil { up += 1 }
                return up == 2
            }
            var agents: [String: TaskyardProcess] = [:]
            for (index, node) in ["n1", "n2", "n3"].enumerated() {
                agents[node] = try await TaskyardProcess.agent(store: store, server: urls[index % 2], node: node, port: ports[2 + index],
                                                               heartbeat: 0.5, capacity: Self.capacity)
            }
            // A failing check must not leave the processes running after the test.
            do {
                try await eventually("three nodes register", within: .seconds(60)) { try await clients[0].nodes(cluster: "c1").count == 3 }

                let total = 600
                let accepted = Accepted()
                let submitter = Task { try await Self.submit(total, to: clients, recording: accepted) }
                let sampler = CapacitySampler()
                let sampling = Task { await sampler.run(store.pool) }

                // The faults, one after another while the load runs.
                var faults: [String] = []
                func progress(_ share: Int) async throws {
                    try await eventually("\(share)% of the load is in", within: .seconds(120)) { accepted.ids.withLock { $0.count } >= total * share / 100 }
                }
                try await progress(15)
                await agents["n1"]!.stop(SIGKILL)
                faults.append("kill -9 agent n1")
                try await Task.sleep(for: .seconds(2))
                // Port 0: a port picked earlier may have gone to an outgoing connection since (a run failed so).
                agents["n1"] = try await TaskyardProcess.agent(store: store, server: urls[0], node: "n1", port: 0, heartbeat: 0.5,
                                                               capacity: Self.capacity)
                faults.append("restart agent n1")
                try await progress(35)
                agents["n2"]!.signal(SIGSTOP)
                faults.append("SIGSTOP agent n2")
                try await Task.sleep(for: .seconds(4))  // twice its lease
                agents["n2"]!.signal(SIGCONT)
                faults.append("SIGCONT agent n2")
                try await progress(55)
                let leader = try await Self.maintenanceLeader(among: clients)
                await servers[leader].stop(SIGKILL)
                faults.append("kill -9 the maintenance leader")
                try await Task.sleep(for: .seconds(1))
                servers[leader] = try serve(ports[leader])
                faults.append("restart that server")
                try await progress(75)
                try database.stop(mode: .fast)
                try await Task.sleep(for: .milliseconds(500))
                try database.start()
                faults.append("restart PostgreSQL")
                try await submitter.value

                try await Self.checkEveryTaskEndedOnce(store.pool, accepted: accepted.ids.withLock { $0 }, of: total, faults: faults)
                sampling.cancel()
                await sampling.value
                print("chaos soak: \(sampler.samples.load(ordering: .relaxed)) samples of the nodes' slots, at most "
                      + "\(sampler.busiest.load(ordering: .relaxed)) tasks on a node of capacity \(Self.capacity)")
                #expect(sampler.samples.load(ordering: .relaxed) >= 100)
                #expect(sampler.over.withLock { $0 }.isEmpty, "over capacity: \(sampler.over.withLock { $0.prefix(10) })")
                #expect(sampler.busiest.load(ordering: .relaxed) == Self.capacity, "the load filled a node to its capacity")

            } catch {
                for agent in agents.values { await agent.stop() }
                for server in servers { await server.stop() }
                await store.close()
                throw error
            }
            for agent in agents.values { await agent.stop(SIGTERM) }
            for server in servers { await server.stop(SIGTERM) }
            await store.close()
        }
    }
}
