import AsyncHTTPClient
import EmbeddedPostgres
import Foundation
import NIOCore
import Postgres
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport
import Testing

/// PostgreSQL failover through libpq's multi-host connection strings: a real streaming standby made with
/// `pg_basebackup -R`, the primary's postmaster killed with SIGKILL under load, the standby promoted.
@Suite("PostgreSQL failover")
struct FailoverTests {
    /// What the submits got: the tasks answered 201, and every other status with how often.
    final class Answers: Sendable {
        let accepted = Mutex<[Int64]>([])
        /// The tasks of batches answered 201 or 200.
        let batched = Mutex<[Int64]>([])
        let others = Mutex<[Int: Int]>([:])
        let retryAfterMissing = Atomic<Int>(0)
    }

    /// POSTs `body` to `path` as a careful client does: again after `Retry-After` while the answer is 503
    /// (or no answer came), for up to a minute. Every answer's status is counted; the first that is not 503
    /// is returned with its body.
    static func sendRetrying(_ deployment: Deployment, path: String, body: String, headers: [(String, String)] = [],
                             recording answers: Answers) async -> (status: Int, body: Data)? {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            var request = HTTPClientRequest(url: deployment.serverURL + path)
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(deployment.adminToken)")
            request.headers.add(name: "Content-Type", value: "application/json")
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(string: body))
            var wait = Duration.milliseconds(200)
            do {
                let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(30))
                let data = Data(try await response.body.collect(upTo: 1 << 22).readableBytesView)
                let status = Int(response.status.code)
                answers.others.withLock { $0[status, default: 0] += 1 }
                guard status == 503 else { return (status, data) }
                if let seconds = response.headers.first(name: "retry-after").flatMap(Double.init) {
                    wait = .seconds(seconds)
                } else {
                    answers.retryAfterMissing.add(1, ordering: .relaxed)
                }
            } catch {
                answers.others.withLock { $0[0, default: 0] += 1 }
            }
            try? await Task.sleep(for: wait)
        }
        return nil
    }

    /// One task, with an Idempotency-Key, sent until it is answered: the task answered 201 or 200 recorded.
    static func submit(_ deployment: Deployment, recording answers: Answers) async {
        guard let (status, body) = await sendRetrying(deployment, path: "/api/v1/clusters/\(Deployment.cluster)/tasks",
                                                      body: #"{"type": "noop", "participating_nodes": ["n1", "n2"]}"#,
                                                      headers: [("Idempotency-Key", UUID().uuidString)], recording: answers),
              status == 201 || status == 200, let task = try? APIJSON.decode(TaskObject.self, from: body) else { return }
        answers.accepted.withLock { $0.append(task.id) }
    }

    /// A batch of `size` tasks, each item keyed, sent until it is answered: its tasks recorded.
    static func submitBatch(_ deployment: Deployment, size: Int, recording answers: Answers) async {
        let items = (0..<size).map { _ in #"{"type": "noop", "participating_nodes": ["n1", "n2"], "idempotency_key": "\#(UUID().uuidString)"}"# }
        guard let (status, body) = await sendRetrying(deployment, path: "/api/v1/clusters/\(Deployment.cluster)/tasks/batch",
                                                      body: #"{"tasks": [\#(items.joined(separator: ", "))]}"#, recording: answers),
              status == 201 || status == 200, let batch = try? APIJSON.decode(TaskBatch.self, from: body) else { return }
        answers.batched.withLock { $0 += batch.tasks.map(\.id) }
    }

    @Test("a standby promoted after the primary's postmaster is killed with SIGKILL mid-load: every submit is answered 201 or 503 with Retry-After, never 500; sent again with its key, each is one task that completes once — and with a synchronous standby none answered 201 is lost",
          arguments: [true, false])
    func promotedStandby(synchronous: Bool) async throws {
        // Synchronous: every commit waits until the standby has it, so what the primary acknowledged the
        // standby holds. Asynchronous: the primary acknowledges first, and its last commits may not reach it.
        let primarySettings = synchronous ? ["synchronous_commit": "on", "synchronous_standby_names": "*"] : ["synchronous_commit": "on"]
        try await TestDatabase.withPrivateServer(settings: primarySettings) { primary in try await primary.withStandby { standby in
            let admin = try await PostgresConnection.connect(primary.configuration())
            try await eventually("the standby streams", within: .seconds(30)) {
                try await admin.perform { connection in
                    try connection.query("SELECT count(*)::integer AS n FROM pg_stat_replication WHERE sync_state = $1",
                                         [synchronous ? "sync" : "async"]).single().decode("n", as: Int.self) == 1
                }
            }
            await admin.close()

            // Both hosts, the writable one wanted: libpq tries them in order.
            let both = try PostgresConfiguration(
                "host=\(primary.socketDirectory.path),\(standby.socketDirectory.path) port=\(primary.port),\(standby.port) "
                    + "user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2")
            let pool = PostgresPool(configuration: both, options: .init(maximumConnections: 8))
            _ = try await Migrator.bundled().migrate(pool)
            let store = TaskStore(pool: pool)
            let answers = Answers()
            try await Deployment.run(on: store, nodes: ["n1", "n2"]) { deployment in
                for _ in 0..<40 { await Self.submit(deployment, recording: answers) }
                let killed = try #require(primary.postmasterID)
                kill(killed, SIGKILL)
                // Submits go on while there is no primary, and after the promotion: one by one, and in
                // batches of 50 beside them.
                let load = Task { for _ in 0..<80 { await Self.submit(deployment, recording: answers) } }
                let bulk = Task { for _ in 0..<8 { await Self.submitBatch(deployment, size: 50, recording: answers) } }
                try await Task.sleep(for: .milliseconds(500))
                try standby.promote()
                await load.value
                await bulk.value

                let singles = answers.accepted.withLock { $0 }
                let batched = answers.batched.withLock { $0 }
                #expect(Set(batched).count == 400, "every batch item became one task: \(Set(batched).count) of 400")
                let accepted = singles + batched
                // Every accepted task the new primary has ends; with a synchronous standby, that is all of them.
                var present = 0
                try await eventually("every accepted task on the new primary is finished", within: .seconds(90)) {
                    let counts = try await pool.withConnection { connection in
                        try connection.query("""
                            SELECT count(*)::integer AS present, count(*) FILTER (WHERE state = 'completed')::integer AS completed
                              FROM tasks WHERE id = ANY ($1)
                            """, [accepted]).single()
                    }
                    present = try counts.decode("present")
                    return try counts.decode("completed", as: Int.self) == present
                }
                let lost = accepted.count - present
                if synchronous { #expect(lost == 0, "\(lost) tasks answered 201 are not on the promoted standby") }
                let ended: [Int] = try await pool.withConnection { connection in
                    try connection.query("""
                        SELECT count(*) FILTER (WHERE to_state = 'completed')::integer AS n FROM task_events WHERE task_id = ANY ($1) GROUP BY task_id
                        """, [accepted]).map { row throws(PostgresError) in try row.decode("n", as: Int.self) }
                }
                #expect(ended.count == present && ended.allSatisfy { $0 == 1 }, "each accepted task on the new primary completed once")
                // Every report a server answered 200 is there: one lost would have ended its task a second
                // time, after its lease, with a second report taken.
                let read = try await deployment.store.mintToken(scopes: [.read], cluster: Deployment.cluster)
                var taken = 0.0
                for node in try await deployment.client.nodes(cluster: Deployment.cluster) {
                    taken += try await MetricsTests.scrape(node.endpoint, token: read).value("taskyard_agent_reports_total{outcome=\"taken\"}") ?? 0
                }
                let endedByReports: Int = try await pool.withConnection { connection in
                    try connection.query("""
                        SELECT count(*)::integer AS n FROM task_events WHERE from_state = 'received' AND to_state IN ('completed', 'failed', 'cancelled')
                        """).single().decode("n")
                }
                if synchronous { #expect(Int(taken) <= endedByReports, "reports answered 200 and not on the promoted standby") }
                // The maintenance leader and the change listener reconnected to the new primary: the leader
                // lock is held again, and a wait is woken by the completion (its own re-read comes every 5 s).
                let promoted = ContinuousClock.now
                try await eventually("maintenance runs again", within: .seconds(40)) { try await deployment.client.healthBody().maintenanceLeader }
                print("failover: maintenance runs again \(promoted.duration(to: .now)) after the load ended")
                let later = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(
                    type: "noop", participatingNodes: ["n1"], runAfter: Date().addingTimeInterval(1)))
                let started = ContinuousClock.now
                let waited = try await deployment.client.wait(cluster: Deployment.cluster, id: later.id, timeout: .seconds(20))
                #expect(waited.task.state == .completed && started.duration(to: .now) < .seconds(4),
                        "a wait is answered when its task completes: \(started.duration(to: .now))")

                let others = answers.others.withLock { $0 }
                #expect(others[500] == nil && others[0] == nil, "no 500, always an answer: \(others)")
                #expect(Set(others.keys).isSubset(of: [200, 201, 503]), "accepted, or 503 while no primary took writes: \(others)")
                #expect(answers.retryAfterMissing.load(ordering: .relaxed) == 0, "every 503 says when to retry")
                #expect(Set(singles).count == 120, "every submit became one task: \(Set(singles).count) of 120, \(others)")
                print("failover (\(synchronous ? "synchronous" : "asynchronous") standby): 120 submits and 8 batches of 50, answers \(others.sorted { $0.key < $1.key }); "
                      + "\(present) of the \(accepted.count) tasks on the promoted standby, each completed once; \(lost) answered 201 and lost with the primary; "
                      + "\(Int(taken)) reports answered 200, \(endedByReports) tasks ended by a report on the promoted standby")
            }
            await pool.close()
        } }
    }
}

/// History reads on a streaming standby (`serve --read-database-url`).
@Suite("History reads on a standby")
struct StandbyReadTests {
    @Test("reads go to a fresh standby; one replaying more than --max-read-lag behind is skipped for the primary; a client reads its own write from the primary")
    func readsMoveAndStayFresh() async throws {
        try await TestDatabase.withPrivateServer { primary in try await primary.withStandby { standby in
            let store = try await primary.migratedStore(connections: 8)
            let onStandby = try await PostgresConnection.connect(standby.configuration())
            @Sendable func standbyHas(_ id: Int64) async throws -> Bool {
                try await onStandby.perform { connection in
                    try connection.query("SELECT count(*)::integer AS n FROM tasks WHERE id = $1", [id]).single().decode("n", as: Int.self) == 1
                }
            }
            var replica = ReadReplica.Configuration(database: standby.configuration())
            replica.checkInterval = .milliseconds(50)
            let settings = replica
            try await Deployment.run(on: store, nodes: ["n1"], serverSettings: { $0.readReplica = settings }) { deployment in
                let reader = TaskyardClient(baseURL: deployment.serverURL, token: try await store.mintToken(scopes: [.read], name: "reader"))
                func readerSees(_ id: Int64) async throws -> Bool {
                    do {
                        _ = try await reader.task(cluster: Deployment.cluster, id: id)
                        return true
                    } catch let failure as TaskyardClient.Failure where failure.status == 404 {
                        return false
                    }
                }
                /// A task the standby has replayed, then its replay paused: from here on it falls behind.
                func pauseAfterAFreshCommit() async throws {
                    let marker = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                    try await eventually("the standby replays the marker") { try await standbyHas(marker.id) }
                    try await onStandby.perform { connection in _ = try connection.query("SELECT pg_wal_replay_pause()") }
                }

                // Fresh: a task the primary has and the standby has not replayed is not there for another
                // client — its read went to the standby — while its writer reads it back from the primary.
                try await pauseAfterAFreshCommit()
                let written = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                #expect(try await !standbyHas(written.id))
                try await eventually("another client's read goes to the standby", within: .milliseconds(1500), every: .milliseconds(20)) {
                    try await !readerSees(written.id)
                }
                #expect(try await deployment.client.task(cluster: Deployment.cluster, id: written.id).task.id == written.id,
                        "the writer reads its write from the primary")
                // Behind by more than the bound: the standby is skipped, and the read is the primary's.
                try await eventually("the standby falls more than 2 s behind and is skipped", within: .seconds(10)) {
                    try await readerSees(written.id)
                }
                #expect(try await !standbyHas(written.id), "still not replayed: the read came from the primary")

                // Replaying again, reads go back to the standby.
                try await onStandby.perform { connection in _ = try connection.query("SELECT pg_wal_replay_resume()") }
                try await eventually("the standby catches up") { try await standbyHas(written.id) }
                try await Task.sleep(for: .milliseconds(200))
                try await pauseAfterAFreshCommit()
                let second = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                // (Within the bound: the freshness verdict is renewed every 50 ms, so look a few times.)
                try await eventually("reads go back to the standby", within: .milliseconds(1500), every: .milliseconds(20)) {
                    try await !readerSees(second.id)
                }
                try await onStandby.perform { connection in _ = try connection.query("SELECT pg_wal_replay_resume()") }
            }
            await onStandby.close()
            await store.close()
        } }
    }
}

/// A client (an agent, the command line) given several server replicas.
@Suite("Server replicas for a client")
struct ServerListTests {
    @Test("an agent whose first server is down registers and runs its tasks through the next one named")
    func agentUsesTheNextServer() async throws {
        // Port 1: nothing listens there, the connection is refused.
        try await Deployment.run(nodes: ["n1"], agentSettings: { $0.server = "http://127.0.0.1:1," + $0.server }) { deployment in
            let task = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            #expect(try await deployment.finished(task.id).task.state == .completed)
        }
    }

    @Test("a client moves on from a server that cannot answer, and from one that answers 503, and stays where it got an answer")
    func clientMovesOn() async throws {
        // Two replicas of one database; the first serves agents only (its clients' share is none).
        try await TestDatabase.withStore { store in
            try await Deployment.run(on: store, nodes: [], serverSettings: { $0.maximumConnections = 0; $0.nodeConnectionReserve = 64 }) { busy in
                try await Deployment.run(on: store, nodes: []) { deployment in
                    let list = "http://127.0.0.1:1,\(busy.serverURL),\(deployment.serverURL)"
                    let client = TaskyardClient(baseURL: list, token: deployment.adminToken, transport: deployment.client.transport)
                    #expect(client.serverURLs == ["http://127.0.0.1:1", busy.serverURL, deployment.serverURL])
                    await #expect(throws: TaskyardClient.Unreachable.self) { _ = try await client.nodes(cluster: Deployment.cluster) }
                    // The busy one answers 503 server_busy.
                    await #expect { _ = try await client.nodes(cluster: Deployment.cluster) } throws: { error in
                        (error as? TaskyardClient.Failure)?.status == 503
                    }
                    for _ in 0..<2 {
                        let nodes = try await client.nodes(cluster: Deployment.cluster)
                        #expect(nodes.isEmpty)
                    }
                    #expect(client.baseURL == deployment.serverURL)
                }
            }
        }
    }
}

extension EmbeddedPostgres {
    /// A streaming standby of this running server (`pg_basebackup -R`, in its run folder), started for
    /// `body` and stopped after it (or when the test process ends, however it ends).
    func withStandby<T>(_ body: (EmbeddedPostgres) async throws -> T) async throws -> T {
        let run = socketDirectory
        let standby = try makeStandby(dataDirectory: run.appending(path: "standby/data"), socketDirectory: run.appending(path: "standby"),
                                      port: port, settings: TestDatabase.throwAwaySettings)
        try standby.start()
        try standby.stopWhenProcessExits(getpid(), thenRemove: run.appending(path: "standby"))
        defer { try? standby.stop(mode: .immediate) }
        return try await body(standby)
    }
}
