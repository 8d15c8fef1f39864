import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import Testing
@testable import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import TaskyardTestSupport

/// A grant names one node and one verb, and runs once: the audit's replays, cross-node uses, rollbacks after
/// completion and batches of duplicates, each tried against real agents.
@Suite("Grants that work once")
struct GrantUseTests {
    /// Runs and rollbacks of `count`, by node.
    final class Runs: Sendable {
        let runs = Mutex<[String: Int]>([:])
        let rollbacks = Mutex<[String: Int]>([:])
        var ran: [String: Int] { runs.withLock { $0 } }
        var rolledBack: [String: Int] { rollbacks.withLock { $0 } }
    }

    /// Real agents n2 and n3 with a `count` handler (and its rollback) that count their runs; n1 is
    /// registered by hand and polled by the test, which so holds real claims with real grants.
    static func withNodes(_ body: @escaping @Sendable (Deployment, _ endpoints: [String: NodeEndpoint], Runs) async throws -> Void) async throws {
        let runs = Runs()
        try await Deployment.withHandPolledInitiator(agents: ["n2", "n3"], handlers: { registry in
            registry.register("count", ClosureHandler { work in
                runs.runs.withLock { $0[work.node, default: 0] += 1 }
                return ["ran_on": .string(work.node)]
            })
            registry.registerRollback("count", ClosureHandler { work in
                runs.rollbacks.withLock { $0[work.node, default: 0] += 1 }
                return ["undone_on": .string(work.node)]
            })
        }) { deployment, endpoints in
            try await body(deployment, endpoints, runs)
        }
    }

    /// Submits a `count` task on n1, n2 and n3 and claims it as n1.
    static func claim(_ deployment: Deployment, timeoutSeconds: Int? = nil) async throws -> ClaimedTaskObject {
        var request = SubmitTaskRequest(type: "count", participatingNodes: ["n1", "n2", "n3"], payload: ["volume": "v1"])
        request.timeoutSeconds = timeoutSeconds
        let task = try await deployment.client.submit(cluster: "c1", request)
        return try #require(try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 10).tasks.first { $0.id == task.id })
    }

    static func body(_ claim: ClaimedTaskObject) -> ParticipantRequest {
        ParticipantRequest(taskID: claim.id, clusterID: "c1", attempt: claim.attempt, initiator: "n1", payload: claim.task.payload)
    }

    static func run(_ claim: ClaimedTaskObject, at endpoint: NodeEndpoint, grant: String, rollback: Bool = false) async throws -> ParticipantGrantTests.Call {
        var path = ["api", "v1", "tasks", "count"]
        if rollback { path.append("rollback") }
        return try await ParticipantGrantTests.call(endpoint.url(path), body: body(claim), grant: grant)
    }

    @Test("a claim carries a grant per participant, for that node and `run` only, living for the lease plus the participant timeout")
    func onePerNode() async throws {
        try await Self.withNodes { deployment, endpoints, runs in
            let claim = try await Self.claim(deployment)
            #expect(Set(claim.grants.keys) == ["n1", "n2", "n3"])
            for (node, grant) in claim.grants {
                let claims = try #require(Grant.unverifiedClaims(of: grant))
                #expect(claims.node == node && claims.verb == .run && claims.taskID == claim.id && claims.attempt == claim.attempt)
                // The test server's lease is the default 30 s; the participant timeout the default 300 s.
                #expect(abs(claims.expiresAt - claims.issuedAt - 330) <= 1, "\(claims.expiresAt - claims.issuedAt)")
            }
            let short = try await Self.claim(deployment, timeoutSeconds: 5)
            let shortClaims = try #require(Grant.unverifiedClaims(of: short.grant(for: "n2")))
            #expect(abs(shortClaims.expiresAt - shortClaims.issuedAt - 35) <= 1, "a task's own shorter timeout bounds its grants")

            // n2's grant is refused by n3 and n1's by n2: a grant is for one node.
            let crossed = try await Self.run(claim, at: try #require(endpoints["n3"]), grant: claim.grant(for: "n2"))
            #expect(crossed.status == 403 && crossed.body.contains("for node n2"), "\(crossed.status) \(crossed.body)")
            #expect(try await Self.run(claim, at: try #require(endpoints["n2"]), grant: claim.grant(for: "n1")).status == 403)
            // A run grant is no rollback grant.
            let asRollback = try await Self.run(claim, at: try #require(endpoints["n2"]), grant: claim.grant(for: "n2"), rollback: true)
            #expect(asRollback.status == 403 && asRollback.body.contains("allows run"), "\(asRollback.status) \(asRollback.body)")
            #expect(runs.ran.isEmpty && runs.rolledBack.isEmpty, "no refused call ran a handler")
        }
    }

    @Test("a replayed grant runs nothing again: every repeat, sequential or concurrent, gets the answer of the one run")
    func runsOnce() async throws {
        try await Self.withNodes { deployment, endpoints, runs in
            let claim = try await Self.claim(deployment)
            let n2 = try #require(endpoints["n2"])
            let first = try await Self.run(claim, at: n2, grant: claim.grant(for: "n2"))
            #expect(first.status == 200 && first.body.contains(#""ran_on":"n2""#), "\(first.body)")
            let repeats = try await withThrowingTaskGroup(of: ParticipantGrantTests.Call.self) { group in
                for _ in 0..<8 { group.addTask { try await Self.run(claim, at: n2, grant: claim.grant(for: "n2")) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for answer in repeats { #expect(answer.status == 200 && answer.body == first.body) }
            #expect(runs.ran == ["n2": 1], "the handler ran once for nine calls")
        }
    }

    @Test("rollback grants come only from the server, for an attempt reported failed; a completed task gets none")
    func rollbackGrants() async throws {
        try await Self.withNodes { deployment, endpoints, runs in
            let claim = try await Self.claim(deployment)
            let n2 = try #require(endpoints["n2"])
            #expect(try await Self.run(claim, at: n2, grant: claim.grant(for: "n2")).status == 200)
            func ask(_ body: String, task: Int64 = claim.id) async throws -> APIContractTests.Answer {
                try await APIContractTests.send(deployment, "POST", "/api/v1/tasks/c1/n1/\(task)/rollback-grants", body: body)
            }
            let staleLease = String(repeating: "0", count: 64)
            let stale = try await ask(#"{"attempt": \#(claim.attempt), "lease": "\#(staleLease)", "nodes": ["n2"]}"#)
            #expect(stale.status == 409 && stale.json["error"]?["code"] == "stale_lease", "\(stale.text)")
            let stranger = try await ask(#"{"attempt": \#(claim.attempt), "lease": "\#(claim.lease)", "nodes": ["n2", "n7"]}"#)
            #expect(stranger.status == 422 && stranger.json["error"]?["field"] == "nodes", "\(stranger.text)")

            let granted = try await ask(#"{"attempt": \#(claim.attempt), "lease": "\#(claim.lease)", "nodes": ["n2"]}"#)
            #expect(granted.status == 200, "\(granted.text)")
            let rollbackGrant = try #require(granted.json["grants"]?["n2"]?.stringValue)
            let claims = try #require(Grant.unverifiedClaims(of: rollbackGrant))
            #expect(claims.verb == .rollback && claims.node == "n2")
            // A rollback grant rolls back, once, and runs nothing else.
            #expect(try await Self.run(claim, at: n2, grant: rollbackGrant).status == 403)
            let undone = try await Self.run(claim, at: n2, grant: rollbackGrant, rollback: true)
            #expect(undone.status == 200 && undone.body.contains("undone_on"), "\(undone.body)")
            #expect(try await Self.run(claim, at: n2, grant: rollbackGrant, rollback: true).body == undone.body)
            #expect(runs.rolledBack == ["n2": 1])

            // The attempt is being undone: it cannot be reported completed, only failed.
            func report(_ state: String) async throws -> APIContractTests.Answer {
                try await APIContractTests.send(deployment, "POST", "/api/v1/tasks/c1/n1/\(claim.id)/state", body: """
                    {"attempt": \(claim.attempt), "lease": "\(claim.lease)", "state": "\(state)", "participants": []}
                    """)
            }
            let completed = try await report("completed")
            #expect(completed.status == 409 && completed.json["error"]?["code"] == "rolling_back", "\(completed.text)")
            #expect(try await report("failed").status == 200)

            // A task reported completed gets no rollback grant: nothing can undo it behind the server's back.
            let done = try await Self.claim(deployment)
            let finished = try await APIContractTests.send(deployment, "POST", "/api/v1/tasks/c1/n1/\(done.id)/state", body: """
                {"attempt": \(done.attempt), "lease": "\(done.lease)", "state": "completed", "participants": []}
                """)
            #expect(finished.status == 200)
            let late = try await ask(#"{"attempt": \#(done.attempt), "lease": "\#(done.lease)", "nodes": ["n2"]}"#, task: done.id)
            #expect(late.status == 409 && late.json["error"]?["code"] == "already_finished", "\(late.text)")
            #expect(try await Self.run(done, at: n2, grant: done.grant(for: "n2"), rollback: true).status == 403)
            #expect(runs.rolledBack == ["n2": 1])
        }
    }

    @Test("a batch of duplicate calls runs one and refuses the others alone; a batch past the cap is refused whole")
    func duplicatesInABatch() async throws {
        try await Self.withNodes { deployment, endpoints, runs in
            let claim = try await Self.claim(deployment)
            let call = ParticipantCall(type: "count", rollback: false, grant: claim.grant(for: "n2"), request: Self.body(claim))
            func send(_ calls: [ParticipantCall]) async throws -> (status: Int, lines: [ParticipantBatchLine]) {
                var request = HTTPClientRequest(url: try #require(endpoints["n2"]).url(["api", "v1", "participant-calls"]))
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "Authorization", value: "Bearer \(claim.grant(for: "n2"))")
                request.body = .bytes(ByteBuffer(bytes: try APIJSON.encode(ParticipantBatchRequest(calls: calls))))
                let response = try await HTTPTransport.shared.client.execute(request, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 1 << 20)
                let lines = String(buffer: body).split(separator: "\n").compactMap {
                    try? APIJSON.decode(ParticipantBatchLine.self, from: Data($0.utf8))
                }
                return (Int(response.status.code), lines)
            }
            let batch = try await send(Array(repeating: call, count: 10))
            #expect(batch.status == 200 && batch.lines.count == 10)
            #expect(batch.lines.filter { $0.status == 200 }.map(\.index) == [0])
            #expect(batch.lines.filter { $0.status == 409 && $0.error?.code.rawValue == "duplicate_call" }.count == 9)
            #expect(runs.ran == ["n2": 1])
            let tooMany = try await send(Array(repeating: call, count: ParticipantEndpoint.maximumBatchCalls + 1))
            #expect(tooMany.status == 400)
            #expect(runs.ran == ["n2": 1])
        }
    }

    @Test("handler runs on a node are bounded by --max-handler-runs; the calls past it wait their turn and finish")
    func handlerSlots() async throws {
        let running = Mutex<[String: (now: Int, most: Int)]>([:])
        try await Deployment.run(nodes: ["n1", "n2"], handlers: { _ in
            var registry = HandlerRegistry.builtins()
            registry.register("hold", ClosureHandler { work in
                running.withLock { $0[work.node, default: (0, 0)].now += 1; $0[work.node]!.most = max($0[work.node]!.most, $0[work.node]!.now) }
                try await Task.sleep(for: .milliseconds(150))
                running.withLock { $0[work.node]!.now -= 1 }
                return nil
            })
            return registry
        }, agentSettings: { $0.maximumHandlerRuns = 2 }) { deployment in
            let tasks = try await deployment.client.submitBatch(cluster: "c1", (0..<6).map { _ in
                SubmitTaskRequest(type: "hold", participatingNodes: ["n1", "n2"])
            })
            for task in tasks {
                #expect(try await deployment.finished(task.id).task.state == .completed)
            }
            let most = running.withLock { $0.mapValues(\.most) }
            #expect(most["n1"] == 2 && most["n2"] == 2, "\(most)")
        }
    }
}

@Suite("Run ledger")
struct RunLedgerTests {
    static func grant(task: Int64, issuedAt: Int64, expiresAt: Int64 = Int64(Date().timeIntervalSince1970) + 300) -> Grant {
        Grant(keyID: "k", cluster: "c1", taskID: task, attempt: 1, type: "t", node: "n2", verb: .run, initiator: "n1",
              payloadDigest: "", issuedAt: issuedAt, expiresAt: expiresAt)
    }

    @Test("past its capacity the ledger forgets the oldest runs and refuses grants issued no later than them")
    func forgetsOldestAndRefusesOlder() async {
        let ledger = RunLedger(capacity: 2)
        let ran = Mutex(0)
        func run(_ grant: Grant) async -> RunLedger.Answer {
            await ledger.once(RunLedger.Use(grant)) {
                ran.withLock { $0 += 1 }
                return .completed(["task": .integer(grant.taskID)])
            }
        }
        let now = Int64(Date().timeIntervalSince1970)
        for task in 1...3 { _ = await run(Self.grant(task: Int64(task), issuedAt: now - 10 + Int64(task))) }
        #expect(ran.withLock { $0 } == 3 && ledger.count == 2)
        // Task 1 was forgotten: its grant, or any issued as early, runs nothing.
        guard case .failed(403, _, _) = await run(Self.grant(task: 1, issuedAt: now - 9)) else {
            Issue.record("a grant as old as a forgotten run ran")
            return
        }
        #expect(await run(Self.grant(task: 3, issuedAt: now - 7)) == .completed(["task": 3]))
        #expect(ran.withLock { $0 } == 3, "a remembered grant answered from the ledger")
        #expect(await run(Self.grant(task: 4, issuedAt: now)) == .completed(["task": 4]))
        #expect(ran.withLock { $0 } == 4)
    }

    @Test("runs are forgotten once their grants have expired, past the verifier's leeway")
    func forgetsExpired() async {
        let ledger = RunLedger()
        let now = Int64(Date().timeIntervalSince1970)
        _ = await ledger.once(RunLedger.Use(Self.grant(task: 1, issuedAt: now - 400, expiresAt: now - RunLedger.expiryMargin - 5))) { .completed(nil) }
        _ = await ledger.once(RunLedger.Use(Self.grant(task: 2, issuedAt: now, expiresAt: now + 300))) { .completed(nil) }
        #expect(ledger.count == 1)
    }
}

extension APIContractTests.Answer {
    var json: JSONValue { (try? APIJSON.decode(JSONValue.self, from: body)) ?? .null }
    var text: String { "\(status) \(String(decoding: body, as: UTF8.self))" }
}

extension JSONValue {
    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}
