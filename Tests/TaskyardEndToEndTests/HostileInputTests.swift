import Foundation
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardServer
import TaskyardTestSupport

/// Input built to break the server: too deep, too large, NULs, times outside any calendar, integers outside
/// their columns. Each gets a 4xx naming the field and writes nothing; none poisons a later read.
@Suite("Hostile input")
struct HostileInputTests {
    struct Case: Sendable, CustomStringConvertible {
        let name: String
        var method = "POST"
        let path: String
        let body: String?
        var headers: [String: String] = [:]
        let status: Int
        var field: String? = nil
        var description: String { name }
    }

    static func nested(_ depth: Int) -> String {
        String(repeating: #"{"a":"#, count: depth - 1) + "{}" + String(repeating: "}", count: depth - 1)
    }

    static func task(_ extra: String) -> String { #"{"type": "noop", "participating_nodes": ["n1"]"# + extra + "}" }

    static let tasks = "/api/v1/clusters/c1/tasks"
    static let state = "/api/v1/tasks/c1/n1/1/state"
    static let lease = String(repeating: "0", count: 64)
    static func report(_ extra: String, attempt: String = "1") -> String {
        #"{"attempt": \#(attempt), "lease": "\#(lease)", "state": "completed""# + extra + "}"
    }

    static let cases: [Case] = [
        // Submit.
        Case(name: "payload 33 deep", path: tasks, body: task(#", "payload": \#(nested(33))"#), status: 422, field: "payload"),
        Case(name: "payload 600 deep", path: tasks, body: task(#", "payload": \#(nested(600))"#), status: 422),
        Case(name: "payload of 300 KiB", path: tasks,
             body: task(#", "payload": {"blob": "\#(String(repeating: "x", count: 300 << 10))"}"#), status: 422, field: "payload"),
        Case(name: "NUL in a payload string", path: tasks, body: task(#", "payload": {"a": "x\u0000y"}"#), status: 422, field: "payload"),
        Case(name: "NUL in a payload key", path: tasks, body: task(#", "payload": {"a\u0000": 1}"#), status: 422, field: "payload"),
        Case(name: "NUL in ordering_key", path: tasks, body: task(#", "ordering_key": "k\u0000""#), status: 422, field: "ordering_key"),
        Case(name: "NUL in type", path: tasks, body: #"{"type": "no\u0000op", "participating_nodes": ["n1"]}"#, status: 422, field: "type"),
        Case(name: "run_after in year 0000", path: tasks, body: task(#", "run_after": "0000-01-01T00:00:00Z""#), status: 422, field: "run_after"),
        Case(name: "run_after in year 10000", path: tasks, body: task(#", "run_after": "+10000-01-01T00:00:00Z""#), status: 422, field: "run_after"),
        Case(name: "priority 2^31", path: tasks, body: task(#", "priority": 2147483648"#), status: 422, field: "priority"),
        Case(name: "max_attempts 2^40", path: tasks, body: task(#", "max_attempts": 1099511627776"#), status: 422, field: "max_attempts"),
        Case(name: "parent_id 2^64", path: tasks, body: task(#", "parent_id": 18446744073709551616"#), status: 422, field: "parent_id"),
        Case(name: "5,000 participants", path: tasks,
             body: #"{"type": "noop", "participating_nodes": [\#((1...5000).map { "\"n\($0)\"" }.joined(separator: ","))]}"#,
             status: 422, field: "participating_nodes"),
        Case(name: "Idempotency-Key of 300 bytes", path: tasks, body: task(""),
             headers: ["Idempotency-Key": String(repeating: "k", count: 300)], status: 422, field: "Idempotency-Key"),
        Case(name: "X-Opaque-Id of 2,000 bytes", path: tasks, body: task(""),
             headers: ["X-Opaque-Id": String(repeating: "o", count: 2000)], status: 422, field: "X-Opaque-Id"),
        Case(name: "batch item with a NUL is named", path: tasks + "/batch",
             body: #"{"tasks": [\#(task("")), \#(task(#", "payload": {"a": "\u0000"}"#))]}"#, status: 422, field: "tasks[1].payload"),
        Case(name: "batch item too deep is named", path: tasks + "/batch",
             body: #"{"tasks": [\#(task("")), \#(task(#", "payload": \#(nested(600))"#))]}"#, status: 422),
        // Gang admission and concurrency keys.
        Case(name: "a concurrency limit without a key", path: tasks, body: task(#", "concurrency_limit": 2"#), status: 422, field: "concurrency_limit"),
        Case(name: "on_limit without a key", path: tasks, body: task(#", "on_limit": "cancel_newest""#), status: 422, field: "on_limit"),
        Case(name: "a concurrency limit of 0", path: tasks, body: task(#", "concurrency_key": "v", "concurrency_limit": 0"#), status: 422,
             field: "concurrency_limit"),
        Case(name: "an empty concurrency key", path: tasks, body: task(#", "concurrency_key": """#), status: 422, field: "concurrency_key"),
        Case(name: "a concurrency key with a NUL", path: tasks, body: task(#", "concurrency_key": "v\u0000""#), status: 422, field: "concurrency_key"),
        Case(name: "an unknown on_limit", path: tasks, body: task(#", "concurrency_key": "v", "on_limit": "drop""#), status: 422, field: "on_limit"),
        Case(name: "an unknown on_offline", path: tasks, body: task(#", "on_offline": "never""#), status: 422, field: "on_offline"),
        Case(name: "a batch item's limit without a key is named", path: tasks + "/batch",
             body: #"{"tasks": [\#(task("")), \#(task(#", "concurrency_limit": 2"#))]}"#, status: 422, field: "tasks[1].concurrency_limit"),
        // Nodes and clusters.
        Case(name: "labels of 100 KiB", method: "PUT", path: "/api/v1/clusters/c1/nodes/n1",
             body: #"{"endpoint": "http://127.0.0.1:9", "labels": {"x": "\#(String(repeating: "l", count: 100 << 10))"}}"#,
             status: 422, field: "labels"),
        Case(name: "labels of 1 MiB", method: "PUT", path: "/api/v1/clusters/c1/nodes/n1",
             body: #"{"endpoint": "http://127.0.0.1:9", "labels": {"x": "\#(String(repeating: "l", count: 1 << 20))"}}"#, status: 413),
        Case(name: "labels 40 deep", method: "PUT", path: "/api/v1/clusters/c1/nodes/n1",
             body: #"{"endpoint": "http://127.0.0.1:9", "labels": \#(nested(40))}"#, status: 422, field: "labels"),
        Case(name: "a label key with a NUL", method: "PUT", path: "/api/v1/clusters/c1/nodes/n1",
             body: #"{"endpoint": "http://127.0.0.1:9", "labels": {"a\u0000": "b"}}"#, status: 422, field: "labels"),
        Case(name: "capacity 2^31", method: "PUT", path: "/api/v1/clusters/c1/nodes/n1",
             body: #"{"endpoint": "http://127.0.0.1:9", "capacity": 2147483648}"#, status: 422, field: "capacity"),
        Case(name: "endpoint with a NUL", method: "PUT", path: "/api/v1/clusters/c1/nodes/n1",
             body: #"{"endpoint": "http://127.0.0.1:9\u0000"}"#, status: 422, field: "endpoint"),
        Case(name: "cluster name with a NUL", path: "/api/v1/clusters", body: #"{"id": "c9", "name": "a\u0000"}"#, status: 422, field: "name"),
        Case(name: "cluster name of 1,000 bytes", path: "/api/v1/clusters",
             body: #"{"id": "c9", "name": "\#(String(repeating: "n", count: 1000))"}"#, status: 422, field: "name"),
        Case(name: "token name with a NUL", path: "/api/v1/tokens", body: #"{"kind": "client", "name": "a\u0000", "scopes": ["read"]}"#,
             status: 422, field: "name"),
        Case(name: "token expiring in year 0000", path: "/api/v1/tokens",
             body: #"{"kind": "client", "name": "t", "scopes": ["read"], "expires_at": "0000-06-01T00:00:00Z"}"#, status: 422, field: "expires_at"),
        // Cancel.
        Case(name: "cancel reason with a NUL", path: "/api/v1/clusters/c1/tasks/2/cancel", body: #"{"reason": "x\u0000"}"#,
             status: 422, field: "reason"),
        Case(name: "cancel reason of 10 KiB", path: "/api/v1/clusters/c1/tasks/2/cancel",
             body: #"{"reason": "\#(String(repeating: "r", count: 10 << 10))"}"#, status: 422, field: "reason"),
        // The agent's side.
        Case(name: "heartbeat attempt 3,000,000,000", path: "/api/v1/tasks/c1/n1/heartbeat",
             body: #"{"tasks": [{"id": 1, "attempt": 3000000000, "lease": "\#(lease)"}]}"#, status: 422, field: "tasks[0].attempt"),
        Case(name: "heartbeat lease with a NUL", path: "/api/v1/tasks/c1/n1/heartbeat",
             body: #"{"tasks": [{"id": 1, "attempt": 1, "lease": "a\u0000"}]}"#, status: 422, field: "tasks[0].lease"),
        Case(name: "heartbeat progress units with a NUL", path: "/api/v1/tasks/c1/n1/heartbeat",
             body: #"{"tasks": [{"id": 1, "attempt": 1, "lease": "\#(lease)", "progress": {"completed": 1, "units": "\u0000"}}]}"#,
             status: 422, field: "tasks[0].progress"),
        Case(name: "report error with a NUL", path: state, body: report(#", "error": "bad\u0000""#), status: 422, field: "error"),
        Case(name: "report result 40 deep", path: state, body: report(#", "result": \#(nested(40))"#), status: 422, field: "result"),
        Case(name: "report result of 300 KiB", path: state,
             body: report(#", "result": {"x": "\#(String(repeating: "r", count: 300 << 10))"}"#), status: 422, field: "result"),
        Case(name: "report attempt 2^31", path: state, body: report("", attempt: "2147483648"), status: 422, field: "attempt"),
        Case(name: "report lease with a NUL", path: state, body: #"{"attempt": 1, "lease": "\u0000", "state": "failed"}"#,
             status: 422, field: "lease"),
        Case(name: "participant started in year 0000", path: state,
             body: #"{"attempt": 1, "lease": "\#(lease)", "state": "failed", "participants": [{"node": "n1", "state": "failed", "started_at": "0000-01-01T00:00:00Z"}]}"#,
             status: 422, field: "participants[0].started_at"),
        // Reads.
        Case(name: "since in year 0000", method: "GET", path: tasks + "?since=0000-01-01T00:00:00Z", body: nil, status: 400, field: "since"),
        Case(name: "type filter with a NUL", method: "GET", path: tasks + "?type=a%00b", body: nil, status: 422, field: "type"),
        Case(name: "node filter with a NUL", method: "GET", path: tasks + "?node=%00", body: nil, status: 422, field: "node"),
    ]

    @Test("every hostile input through every write route: a 4xx naming the field, and no table changes")
    func hostileTable() async throws {
        try await Deployment.run(nodes: []) { deployment in
            for node in ["n1", "n2"] {
                _ = try await deployment.client.registerNode(cluster: "c1", node: node, RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            }
            // Task 1 received by n1 (for the reports and heartbeats), task 2 queued (for the cancels).
            _ = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            _ = try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 1)
            _ = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]))
            for hostile in Self.cases {
                let before = try await AuthorizationTests.rowCounts(deployment.store)
                let answer = try await APIContractTests.send(deployment, hostile.method, hostile.path, body: hostile.body,
                                                             headers: hostile.headers)
                let text = String(decoding: answer.body.prefix(300), as: UTF8.self)
                #expect(answer.status == hostile.status, "\(hostile.name): \(text)")
                let error = try? APIJSON.decode(ErrorBody.self, from: answer.body)
                #expect(error != nil, "\(hostile.name): the error is in the contract's shape")
                if let field = hostile.field { #expect(error?.error.field == field, "\(hostile.name): \(text)") }
                #expect(answer.body.count < 4096, "\(hostile.name): an error does not echo the input")
                #expect(try await AuthorizationTests.rowCounts(deployment.store) == before, "\(hostile.name) changed nothing")
            }
            // Nothing stored poisons a read.
            let listed = try await APIContractTests.send(deployment, "GET", Self.tasks)
            #expect(listed.status == 200)
            let nodes = try await APIContractTests.send(deployment, "GET", "/api/v1/clusters/c1/nodes")
            #expect(nodes.status == 200)
        }
    }

    @Test("a report batch with one bad item: that item gets its own 422, the others are written")
    func reportBatchItemsStandAlone() async throws {
        try await Deployment.run(nodes: []) { deployment in
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            _ = try await deployment.client.submitBatch(cluster: "c1", Array(repeating: SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]), count: 4))
            let claimed = try await deployment.client.poll(cluster: "c1", node: "n1", wait: .seconds(0), limit: 4).tasks
            #expect(claimed.count == 4)
            func item(_ task: ClaimedTaskObject, _ extra: String, attempt: String = "1") -> String {
                #"{"task_id": \#(task.id), "attempt": \#(attempt), "lease": "\#(task.lease)", "state": "failed""# + extra + "}"
            }
            let body = #"{"reports": [\#(item(claimed[0], #", "error": "plain""#)), \#(item(claimed[1], #", "error": "NUL \u0000 here""#)), \#(item(claimed[2], "", attempt: "3000000000")), \#(item(claimed[3], #", "result": \#(Self.nested(40))"#))]}"#
            let answer = try await APIContractTests.send(deployment, "POST", "/api/v1/tasks/c1/n1/states", body: body)
            #expect(answer.status == 200, "\(String(decoding: answer.body.prefix(300), as: UTF8.self))")
            let results = try APIJSON.decode(StateReportBatchResponse.self, from: answer.body).results
            #expect(results.map(\.status) == [200, 422, 422, 422])
            #expect(results[1].error?.field == "reports[1].error")
            #expect(results[2].error?.field == "reports[2].attempt")
            #expect(results[3].error?.field == "reports[3].result")
            let states = try await claimed.asyncMap { try await deployment.client.task(cluster: "c1", id: $0.id).task.state }
            #expect(states[0] != .received, "the good item was written")
            #expect(states[1...] == [.received, .received, .received], "the refused items changed nothing")
            // Under its real lease, a report naming a node outside the task is refused for that node.
            let outside = try await APIContractTests.send(deployment, "POST", "/api/v1/tasks/c1/n1/\(claimed[1].id)/state",
                body: #"{"attempt": 1, "lease": "\#(claimed[1].lease)", "state": "failed", "participants": [{"node": "n9", "state": "failed"}]}"#)
            #expect(outside.status == 422)
            #expect(try APIJSON.decode(ErrorBody.self, from: outside.body).error.field == "participants[0].node")
        }
    }

    @Test("a poison task submitted beside good ones is refused at submit, and the good ones complete")
    func poisonBesideGood() async throws {
        try await Deployment.run(nodes: ["n1", "n2"]) { deployment in
            var good: [Int64] = []
            for index in 0..<6 {
                if index == 3 {
                    for poison in [Self.task(#", "payload": \#(Self.nested(508))"#), Self.task(#", "payload": {"a": "\u0000"}"#)] {
                        let answer = try await APIContractTests.send(deployment, "POST", Self.tasks, body: poison)
                        #expect(answer.status == 422)
                    }
                }
                good.append(try await deployment.client.submit(cluster: "c1",
                    SubmitTaskRequest(type: "noop", participatingNodes: ["n1", "n2"], payload: ["index": .integer(Int64(index))])).id)
            }
            for id in good { #expect(try await deployment.finished(id).task.state == .completed) }
            let all = try await deployment.client.tasks(cluster: "c1", query: ["parent_id": "none"])
            #expect(all.tasks.count == good.count)
        }
    }

    @Test("an Idempotency-Key means its request: the same request gets the first task, another request a 422; batch items take keys")
    func idempotency() async throws {
        try await Deployment.run(nodes: []) { deployment in
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let first = try await APIContractTests.send(deployment, "POST", Self.tasks, body: Self.task(#", "payload": {"v": 1}"#),
                                                        headers: ["Idempotency-Key": "k1"])
            #expect(first.status == 201)
            let again = try await APIContractTests.send(deployment, "POST", Self.tasks, body: Self.task(#", "payload": {"v": 1}"#),
                                                        headers: ["Idempotency-Key": "k1"])
            #expect(again.status == 200)
            #expect(try APIJSON.decode(TaskObject.self, from: again.body).id == APIJSON.decode(TaskObject.self, from: first.body).id)
            let before = try await AuthorizationTests.rowCounts(deployment.store)
            let other = try await APIContractTests.send(deployment, "POST", Self.tasks, body: Self.task(#", "payload": {"v": 2}"#),
                                                        headers: ["Idempotency-Key": "k1"])
            #expect(other.status == 422)
            let error = try APIJSON.decode(ErrorBody.self, from: other.body).error
            #expect(error.code.rawValue == "idempotency_key_reused")
            #expect(error.field == "Idempotency-Key")

            // A batch: a new key, the same request under k1 (matches), then the batch again (nothing new).
            let batch = #"{"tasks": [\#(Self.task(#", "idempotency_key": "b1""#)), \#(Self.task(#", "payload": {"v": 1}, "idempotency_key": "k1""#)), \#(Self.task(""))]}"#
            let made = try await APIContractTests.send(deployment, "POST", Self.tasks + "/batch", body: batch)
            #expect(made.status == 201, "\(String(decoding: made.body, as: UTF8.self))")
            let madeTasks = try APIJSON.decode(TaskBatch.self, from: made.body).tasks
            #expect(madeTasks.count == 3)
            #expect(madeTasks[1].id == (try APIJSON.decode(TaskObject.self, from: first.body).id))
            let reused = #"{"tasks": [\#(Self.task(#", "idempotency_key": "b1""#)), \#(Self.task(#", "payload": {"v": 9}, "idempotency_key": "k1""#))]}"#
            let refused = try await APIContractTests.send(deployment, "POST", Self.tasks + "/batch", body: reused)
            #expect(refused.status == 422)
            #expect(try APIJSON.decode(ErrorBody.self, from: refused.body).error.field == "tasks[1].idempotency_key")
            let counts = try await AuthorizationTests.rowCounts(deployment.store)
            #expect(counts[2] == before[2] + 2, "the batch made two tasks (b1 and the unkeyed one) and the refused one none")
        }
    }

    @Test("an agent whose report batch is too large for the server splits it: every task is reported")
    func agentSplitsRefusedBatches() async throws {
        // 40 KiB of result per task and a server body limit of 200 KiB: a batch of more than four is refused.
        try await Deployment.run(nodes: ["n1"], handlers: { _ in
            var registry = HandlerRegistry.builtins()
            registry.register("bulky", ClosureHandler { _ in ["blob": .string(String(repeating: "b", count: 40 << 10))] })
            return registry
        }, serverSettings: { $0.maximumBodyBytes = 200 << 10 }) { deployment in
            let submitted = try await deployment.client.submitBatch(cluster: "c1",
                Array(repeating: SubmitTaskRequest(type: "bulky", participatingNodes: ["n1"], maxAttempts: 1), count: 30))
            for task in submitted {
                let finished = try await deployment.finished(task.id)
                #expect(finished.task.state == .completed, "\(finished.task.error ?? "")")
            }
        }
    }

    @Test("a handler that prints NUL and a megabyte to stderr: the task fails with a short, clean error")
    func noisyHandler() async throws {
        let folder = try TestEnvironment.makeExecutables([
            "noisy": "#!/bin/sh\nprintf 'before\\000after\\n' >&2\nhead -c 1048576 /dev/zero | tr '\\000' 'z' >&2\necho >&2\nexit 4\n",
            "nul_result": "#!/bin/sh\nprintf '{\"x\": \"a\\\\u0000b\"}'\n",
        ])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Deployment.run(nodes: ["n1", "n2"], agentSettings: { $0.handlersDirectory = folder }) { deployment in
            let noisy = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noisy", participatingNodes: ["n1", "n2"], maxAttempts: 1))
            let nul = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "nul_result", participatingNodes: ["n1"], maxAttempts: 1))
            let failed = try await deployment.finished(noisy.id)
            #expect(failed.task.state == .failed)
            let error = try #require(failed.task.error)
            #expect(error.contains("exited with status 4"), "\(error.prefix(300))")
            #expect(error.utf8.count <= 16 << 10)
            #expect(!error.unicodeScalars.contains { $0.value == 0 })
            for participant in failed.task.participants {
                #expect((participant.error?.utf8.count ?? 0) <= 4096)
                #expect(participant.error?.contains("before after") == true || participant.error?.contains("exited with status 4") == true)
            }
            let refused = try await deployment.finished(nul.id)
            #expect(refused.task.state == .failed)
            #expect(refused.task.error?.contains("cannot be stored") == true, "\(refused.task.error ?? "")")
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
