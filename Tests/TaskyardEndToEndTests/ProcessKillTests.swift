import EmbeddedPostgres
import Foundation
import Postgres
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport

/// A `taskyard` process started by a test, with its output in a log file.
struct TaskyardProcess {
    let pid: pid_t
    let log: URL
    /// Files made for it (its token), removed with its log when it is stopped.
    var files: [URL] = []

    static func start(_ arguments: [String], name: String) throws -> TaskyardProcess {
        let binary = try #require(TestEnvironment.taskyardBinary, "the taskyard executable should be built next to the tests")
        let log = FileManager.default.temporaryDirectory.appending(path: "taskyard-\(name)-\(UUID().uuidString.prefix(8)).log")
        return TaskyardProcess(pid: try Subprocess.spawn(binary.path, arguments, outputPath: log.path), log: log)
    }

    /// `taskyard agent` for a node of cluster c1 with a node token of its own (in a 0600 file), answering
    /// quickly enough for short test leases.
    static func agent(_ deployment: Deployment, node: String, port: Int, heartbeat: Double = 0.5) async throws -> TaskyardProcess {
        try await agent(store: deployment.store, server: deployment.serverURL, node: node, port: port, heartbeat: heartbeat)
    }

    /// The same against any server of the store's database.
    static func agent(store: TaskStore, server: String, node: String, port: Int, heartbeat: Double = 0.5,
                      capacity: Int? = nil, extra: [String] = []) async throws -> TaskyardProcess {
        let token = try await store.mintNodeToken(cluster: "c1", node: node)
        let tokenFile = FileManager.default.temporaryDirectory.appending(path: "taskyard-token-\(UUID().uuidString.prefix(8))")
        guard FileManager.default.createFile(atPath: tokenFile.path, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
        else { throw DeploymentError("cannot write \(tokenFile.path)") }
        var agent = try start(["agent", "--server", server, "--cluster", "c1", "--node", node, "--listen", "127.0.0.1:\(port)",
                               "--token-file", tokenFile.path, "--heartbeat-interval", String(heartbeat), "--poll-wait", "1",
                               "--log-level", "info"] + (capacity.map { ["--capacity", String($0)] } ?? []) + extra, name: "agent-\(node)")
        agent.files.append(tokenFile)
        return agent
    }

    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Stops it (SIGKILL unless told otherwise) and reaps it; its exit status.
    @discardableResult
    func stop(_ number: Int32 = SIGKILL) async -> Int32? {
        kill(pid, number)
        let status = await Subprocess.wait(pid, timeout: .seconds(30))
        if status == nil { kill(pid, SIGKILL); _ = await Subprocess.wait(pid, timeout: .seconds(5)) }
        for file in [log] + files { try? FileManager.default.removeItem(at: file) }
        return status
    }
}

/// Polls `condition` until it holds or `limit` passes.

@Suite("Killing things")
struct ProcessKillTests {
    static let shortLeases: @Sendable (inout ServerConfiguration) -> Void = { configuration in
        configuration.lease = .seconds(2)
        configuration.leaseExpirer.interval = .milliseconds(200)
    }

    @Test("kill -9 an agent in the middle of a task: after its lease expires, attempt 2 completes it")
    func agentKilledMidTask() async throws {
        try await Deployment.run(nodes: [], serverSettings: Self.shortLeases) { deployment in
            let ports = TestEnvironment.freePorts(2)
            let first = try await TaskyardProcess.agent(deployment, node: "n1", port: ports[0])
            try await eventually("n1 registers") { try await deployment.client.nodes(cluster: "c1").count == 1 }
            let task = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "sleep", participatingNodes: ["n1"], payload: ["seconds": 3]))
            try await eventually("the agent takes the task") {
                try await deployment.client.task(cluster: "c1", id: task.id).task.state == .received
            }
            try await Task.sleep(for: .milliseconds(300))
            await first.stop(SIGKILL)

            // The node's agent comes back, as a supervisor would restart it.
            let second = try await TaskyardProcess.agent(deployment, node: "n1", port: ports[1])
            let done = try await deployment.finished(task.id, within: .seconds(30))
            #expect(done.task.state == .completed)
            #expect(done.task.attempt == 2)
            let events = try await deployment.client.events(cluster: "c1", id: task.id)
            let story = events.map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue)@\($0.attempt)" }
            #expect(story == ["->queued@0", "queued>received@1", "received>queued@1", "queued>received@2", "received>completed@2"])
            #expect(events[2].detail?["reason"] == "lease expired")
            #expect(done.task.participants.map(\.attempt) == [2], "attempt 1 never reported")
            let outcomes = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/tasks/\(task.id)/participants")
            #expect(try APIJSON.decode(ParticipantList.self, from: outcomes.body).participants.map(\.attempt) == [2])
            await second.stop(SIGTERM)
        }
    }

    @Test("a stale agent (SIGSTOP past its lease, then SIGCONT) reports late: 409, and nothing changes")
    func staleAgentReportsLate() async throws {
        try await Deployment.run(nodes: [], serverSettings: Self.shortLeases) { deployment in
            let ports = TestEnvironment.freePorts(2)
            // Its heartbeats are far apart, so that after waking it reports before it learns the task is lost.
            let stale = try await TaskyardProcess.agent(deployment, node: "n1", port: ports[0], heartbeat: 60)
            try await eventually("n1 registers") { try await deployment.client.nodes(cluster: "c1").count == 1 }
            let task = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "sleep", participatingNodes: ["n1"], payload: ["seconds": 1]))
            try await eventually("the agent takes the task") {
                try await deployment.client.task(cluster: "c1", id: task.id).task.state == .received
            }
            stale.signal(SIGSTOP)
            try await eventually("the lease expires") {
                try await deployment.client.task(cluster: "c1", id: task.id).task.state == .queued
            }
            let fresh = try await TaskyardProcess.agent(deployment, node: "n1", port: ports[1])
            let done = try await deployment.finished(task.id, within: .seconds(30))
            // Attempt 2, or a later one when a loaded machine made the fresh agent miss its 2 s lease too.
            #expect(done.task.state == .completed && done.task.attempt >= 2)
            await fresh.stop(SIGTERM)
            let before = try await deployment.store.snapshot()

            stale.signal(SIGCONT)
            do {
                try await eventually("the stale agent reports and is refused", within: .seconds(20)) {
                    stale.output.contains("report refused")
                }
            } catch {
                Issue.record("\(error); the stale agent said:\n\(stale.output.suffix(3000))")
                await stale.stop(SIGKILL)
                return
            }
            #expect(stale.output.contains("409") || stale.output.contains("already"), "\(stale.output.suffix(500))")
            #expect(try await deployment.store.snapshot() == before, "the late report changed nothing")
            await stale.stop(SIGKILL)
        }
    }

    @Test("kill the maintenance leader while two servers run: the other takes over lease expiry")
    func leaderTakeover() async throws {
        try await TestDatabase.withStore { store in
            let database = store.pool.configuration.connectionString
            let ports = TestEnvironment.freePorts(2)
            let servers = try ports.map { port in
                try TaskyardProcess.start(["serve", "--key-file", TestEnvironment.keyFilePath, "--database-url", database, "--listen", "127.0.0.1:\(port)",
                                           "--lease-seconds", "1", "--log-level", "info"], name: "serve-\(port)")
            }
            // A failing check must not leave the servers running after the test.
            var stopped: Set<Int> = []
            do {
                let admin = try await store.mintToken(scopes: [.admin])
                let clients = ports.map { TaskyardClient(baseURL: "http://127.0.0.1:\($0)", token: admin) }
                func leaders() async -> [Bool] {
                    var answers: [Bool] = []
                    for client in clients {
                        let health = try? await client.healthBody()
                        answers.append(health?.maintenanceLeader ?? false)
                    }
                    return answers
                }
                try await eventually("both servers answer") {
                    var up = 0
                    for client in clients where (try? await client.healthBody()) != nil { up += 1 }
                    return up == 2
                }
                try await eventually("one server leads maintenance") { await leaders().filter { $0 }.count == 1 }
                let leader = try #require(await leaders().firstIndex(of: true))
                let survivor = 1 - leader
                await servers[leader].stop(SIGKILL)
                stopped.insert(leader)

                // A task whose agent vanished: claimed with a one-second lease and never reported.
                _ = try await clients[survivor].createCluster(id: "c1")
                _ = try await clients[survivor].registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
                let task = try await clients[survivor].submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                _ = try await store.queue.claim(cluster: "c1", node: "n1", limit: 1, lease: .seconds(1))

                try await eventually("the surviving server takes the lead", within: .seconds(15)) { await leaders()[survivor] }
                try await eventually("the lost lease expires", within: .seconds(15)) {
                    try await clients[survivor].task(cluster: "c1", id: task.id).task.state == .queued
                }
                #expect(servers[survivor].output.contains("this server now runs maintenance"))
                #expect(await servers[survivor].stop(SIGTERM) == 0)
            } catch {
                for index in servers.indices where !stopped.contains(index) { await servers[index].stop() }
                throw error
            }
        }
    }
}

@Suite("Agent shutdown")
struct AgentShutdownTests {
    @Test("SIGTERM: the agent stops polling, finishes what it holds, reports it once, exits 0; nothing is lost")
    func gracefulDrain() async throws {
        try await Deployment.run(nodes: [], serverSettings: ProcessKillTests.shortLeases) { deployment in
            let ports = TestEnvironment.freePorts(2)
            let agent = try await TaskyardProcess.agent(deployment, node: "n1", port: ports[0])
            try await eventually("n1 registers") { try await deployment.client.nodes(cluster: "c1").count == 1 }
            let running = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "sleep", participatingNodes: ["n1"], payload: ["seconds": 1.5]))
            try await eventually("the agent takes the task") {
                try await deployment.client.task(cluster: "c1", id: running.id).task.state == .received
            }
            // Received on the server is not yet in the agent's hands: wait for its heartbeat to renew the lease.
            let firstLease = try await deployment.client.task(cluster: "c1", id: running.id).task.leaseExpiresAt
            try await eventually("the agent renews the lease") {
                try await deployment.client.task(cluster: "c1", id: running.id).task.leaseExpiresAt != firstLease
            }
            let clock = ContinuousClock()
            let started = clock.now
            agent.signal(SIGTERM)
            try await Task.sleep(for: .milliseconds(200))
            let later = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            let status = await Subprocess.wait(agent.pid, timeout: .seconds(30))
            #expect(status == 0)
            #expect(clock.now - started < .seconds(10))
            let done = try await deployment.client.task(cluster: "c1", id: running.id)
            #expect(done.task.state == .completed, "the task in flight was finished and reported: \(agent.output.suffix(2000))")
            let events = try await deployment.client.events(cluster: "c1", id: running.id)
            #expect(events.filter { $0.to == .completed }.count == 1, "reported once")

            // The stopping agent's last poll may still have taken the later task on the server; if so its
            // lease brings it back, and the node's next agent runs it.
            let next = try await TaskyardProcess.agent(deployment, node: "n1", port: ports[1])
            do {
                let finished = try await deployment.finished(later.id, within: .seconds(30))
                #expect(finished.task.state == .completed)
            } catch {
                Issue.record("\(error); the next agent said:\n\(next.output.suffix(3000))")
            }
            await next.stop(SIGTERM)
        }
    }
}
