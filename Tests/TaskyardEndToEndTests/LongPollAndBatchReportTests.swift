import AsyncHTTPClient
import Foundation
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardTestSupport
import TaskyardServer
import TaskyardStore

@Suite("Long-poll and batched reports")
struct LongPollAndBatchReportTests {
    /// A server whose waiting polls never re-check on their own: only a notification can wake them.
    static func withServer(_ body: @escaping @Sendable (Deployment) async throws -> Void) async throws {
        try await Deployment.run(nodes: [], serverSettings: { $0.pollRecheckInterval = .seconds(3600) }) { deployment in
            for node in ["n1", "n2"] {
                _ = try await deployment.client.registerNode(cluster: "c1", node: node,
                                                             RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            }
            try await body(deployment)
        }
    }

    @Test("a node has one waiting poll: a newer one answers the older at once, empty, and alone claims what comes; re-checks do not rewrite last_seen_at")
    func newerPollSupersedesOlder() async throws {
        try await Deployment.run(nodes: [], serverSettings: { $0.pollRecheckInterval = .milliseconds(20) }) { deployment in
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let clock = ContinuousClock()
            // An agent's poll it gave up on (say its client timed out): still waiting on the server.
            let abandoned = Task { try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(20), limit: 16) }
            try await Task.sleep(for: .milliseconds(300))
            func lastSeen() async throws -> Date? {
                try await deployment.client.nodes(cluster: "c1").first { $0.id == "n1" }?.lastSeenAt
            }
            let seenWhileWaiting = try await lastSeen()
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await lastSeen() == seenWhileWaiting, "25 re-checks, no heartbeat write")
            // The agent polls again: the abandoned poll answers at once, empty.
            let current = Task { try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(10), limit: 16) }
            let superseded = clock.now
            let old = try await abandoned.value
            #expect(old.tasks.isEmpty)
            #expect(clock.now - superseded < .seconds(2), "answered after \(clock.now - superseded)")
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            let claimed = try await current.value
            #expect(claimed.tasks.map(\.id) == [task.id])
            #expect(claimed.tasks.first?.attempt == 1)
        }
    }

    @Test("an abandoned poll (its client gives up after 1 s) claims nothing: a task submitted next is claimed by the next real poll, attempt 1")
    func abandonedPollClaimsNothing() async throws {
        try await Self.withServer { deployment in
            var request = HTTPClientRequest(url: deployment.serverURL + "/api/v1/tasks/c1/n1?wait=20&limit=16")
            request.headers.add(name: "Authorization", value: "Bearer \(deployment.adminToken)")
            // A dedicated client whose timed-out request closes its connection, as an agent's would.
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                _ = try await client.execute(request, timeout: .seconds(1))
                Issue.record("the poll should have timed out on the client")
            } catch {}
            try await client.shutdown()
            try await Task.sleep(for: .milliseconds(200))
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await deployment.client.task(cluster: "c1", id: task.id).task.state == .queued, "nobody claimed it")
            let claimed = try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(5), limit: 16)
            #expect(claimed.tasks.map(\.id) == [task.id])
            #expect(claimed.tasks.first?.attempt == 1)
        }
    }

    @Test("past the cap on open connections a new one is closed at once; once one closes, a new one is served")
    func connectionCap() async throws {
        try await Self.withServer { deployment in
            // A replica of its own with room for one connection, reached only by the clients below.
            let (ports, announce) = AsyncStream<Int>.makeStream()
            var configuration = ServerConfiguration(keyFile: TestEnvironment.keyFile)
            configuration.port = 0
            configuration.maintenanceEnabled = false
            configuration.maximumConnections = 1
            configuration.nodeConnectionReserve = 0
            let capped = try TaskyardHTTPServer.application(store: deployment.store, configuration: configuration,
                                                            logger: Deployment.quietLogger) { announce.yield($0) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await capped.serveUntilCancelled() }
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())
                func request(_ path: String) -> HTTPClientRequest {
                    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)" + path)
                    request.headers.add(name: "Authorization", value: "Bearer \(deployment.adminToken)")
                    return request
                }
                let holder = HTTPClient(eventLoopGroupProvider: .singleton)
                let other = HTTPClient(eventLoopGroupProvider: .singleton)
                let held = Task { try await holder.execute(request("/api/v1/tasks/c1/n1?wait=2"), timeout: .seconds(10)).status.code }
                try await Task.sleep(for: .milliseconds(500))
                await #expect(throws: (any Error).self, "the second connection is closed at once") {
                    _ = try await other.execute(request("/healthz"), timeout: .seconds(5))
                }
                #expect(try await held.value == 200, "the first connection is served as ever")
                try await holder.shutdown()
                try await eventually("a connection is served again once the first is gone", within: .seconds(10)) {
                    (try? await other.execute(request("/healthz"), timeout: .seconds(5)))?.status == .ok
                }
                try await other.shutdown()
                group.cancelAll()
            }
        }
    }

    @Test("a submit through replica A wakes a poll waiting on replica B within milliseconds (B never re-checks on its own)")
    func submitWakesPollOnAnotherReplica() async throws {
        try await Self.withServer { deployment in
            // Replica B: its own store (so its own signals), the same database.
            let (ports, announce) = AsyncStream<Int>.makeStream()
            var configuration = ServerConfiguration(keyFile: TestEnvironment.keyFile)
            configuration.port = 0
            configuration.maintenanceEnabled = false
            configuration.pollRecheckInterval = .seconds(3600)
            let storeB = TaskStore(pool: deployment.store.pool, configuration: deployment.store.configuration)
            let replicaB = try TaskyardHTTPServer.application(store: storeB, configuration: configuration,
                                                              logger: Deployment.quietLogger) { announce.yield($0) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await replicaB.serveUntilCancelled() }
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())
                let clientB = TaskyardClient(baseURL: "http://127.0.0.1:\(port)", token: deployment.adminToken)
                let clock = ContinuousClock()
                var delays: [Duration] = []
                for _ in 0..<5 {
                    let waiting = Task { try await clientB.poll(cluster: "c1", node: "n1", wait: .seconds(60), limit: 16) }
                    // Until the poll is waiting, a submit would simply be claimed by its first look.
                    try await Task.sleep(for: .milliseconds(300))
                    let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
                    let submitted = clock.now
                    let answer = try await waiting.value
                    delays.append(clock.now - submitted)
                    #expect(answer.tasks.map(\.id) == [task.id])
                }
                let median = delays.sorted()[delays.count / 2]
                #expect(median < .milliseconds(100), "replica B woke \(delays) after the submit returned")
                group.cancelAll()
            }
        }
    }

    @Test("a waiting poll wakes on a submit for its node, not on one for another node, and returns empty when its wait ends")
    func pollWakesOnSubmit() async throws {
        try await Self.withServer { deployment in
            let client = deployment.client
            let waiting = Task { try await client.poll(cluster: "c1", node: "n1", wait: .seconds(60), limit: 16) }
            // Until the poll is waiting, a submit would simply be claimed by its first look.
            try await Task.sleep(for: .milliseconds(300))
            _ = try await client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n2"]))
            let mine = try await client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            let answer = try await waiting.value
            #expect(answer.tasks.map(\.id) == [mine.id], "woken by the submit for n1 and claimed only its task")
            #expect(answer.tasks.first?.state == .received)

            let idle = try await client.poll(cluster: "c1", node: "n1", wait: .seconds(0.5), limit: 16)
            #expect(idle.tasks.isEmpty && idle.cancel.isEmpty)
            let other = try await client.poll(cluster: "c1", node: "n2", wait: .seconds(0), limit: 16)
            #expect(other.tasks.count == 1, "n2's task waited for n2")
        }
    }

    @Test("a waiting poll wakes on a cancel request for a task its node holds, and on a batch submit")
    func pollWakesOnCancelAndBatch() async throws {
        try await Self.withServer { deployment in
            let client = deployment.client
            let held = try await client.submit(cluster: "c1", SubmitTaskRequest(type: "sleep", participatingNodes: ["n1"]))
            #expect(try await client.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 16).tasks.map(\.id) == [held.id])

            let waitingForCancel = Task { try await client.poll(cluster: "c1", node: "n1", wait: .seconds(60), limit: 16) }
            try await Task.sleep(for: .milliseconds(300))
            _ = try await client.cancel(cluster: "c1", id: held.id)
            let cancelled = try await waitingForCancel.value
            #expect(cancelled.cancel == [held.id] && cancelled.tasks.isEmpty)

            let waitingForBatch = Task { try await client.poll(cluster: "c1", node: "n2", wait: .seconds(60), limit: 100) }
            try await Task.sleep(for: .milliseconds(300))
            let batch = try await client.submitBatch(cluster: "c1", (0..<50).map { _ in
                SubmitTaskRequest(type: "noop", participatingNodes: ["n2"])
            })
            let woken = try await waitingForBatch.value
            #expect(!woken.tasks.isEmpty && Set(woken.tasks.map(\.id)).isSubset(of: Set(batch.map(\.id))))
        }
    }

    @Test("a batch of reports is written at once; a stale, unknown or repeated item is refused alone")
    func batchReport() async throws {
        try await Self.withServer { deployment in
            let client = deployment.client
            let submitted = try await client.submitBatch(cluster: "c1", (0..<3).map { _ in
                SubmitTaskRequest(type: "noop", participatingNodes: ["n1"])
            })
            let claimed = try await client.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 16).tasks
            #expect(claimed.map(\.id) == submitted.map(\.id))
            func item(_ task: ClaimedTaskObject, attempt: Int? = nil, state: ReportedState = .completed) -> StateReportBatchRequest.Item {
                let participant = ParticipantOutcome(node: "n1", state: state == .completed ? .completed : .failed,
                                                     result: ["ok": true], error: state == .completed ? nil : "disk full")
                return .init(taskID: task.id, report: StateReportRequest(TaskReport(
                    attempt: attempt ?? task.attempt, lease: task.lease, state: state, result: state == .completed ? ["n1": ["ok": true]] : nil,
                    error: state == .completed ? nil : "n1: disk full", participants: [participant])))
            }
            var unknown = item(claimed[0])
            unknown.taskID = 999_999
            let answer = try await client.reportBatch(cluster: "c1", node: "n1", StateReportBatchRequest(reports: [
                item(claimed[0]), item(claimed[1], attempt: 7), unknown, item(claimed[0]), item(claimed[2], state: .failed),
            ]))
            #expect(answer.results.map(\.status) == [200, 409, 404, 422, 200])
            #expect(answer.results.map(\.taskID) == [claimed[0].id, claimed[1].id, 999_999, claimed[0].id, claimed[2].id])
            #expect(answer.results[1].error?.code.rawValue == "stale_attempt")
            #expect(answer.results[3].error?.field == "reports[3].task_id")
            #expect(answer.results[4].state == .queued, "a failure with attempts left goes back to the queue")

            let done = try await client.task(cluster: "c1", id: claimed[0].id)
            #expect(done.task.state == .completed && done.task.result == ["n1": ["ok": true]])
            #expect(done.task.participants.map(\.state) == [.completed] && done.children.isEmpty, "the participant's outcome is recorded, not a task")
            #expect(try await client.task(cluster: "c1", id: claimed[1].id).task.state == .received, "the stale item changed nothing")
            let retried = try await client.task(cluster: "c1", id: claimed[2].id)
            #expect(retried.task.state == .queued && retried.task.participants.map(\.state) == [.failed])
            let events = try await client.events(cluster: "c1", id: claimed[0].id).map(\.to)
            #expect(events == [.queued, .received, .completed])
        }
    }
}
