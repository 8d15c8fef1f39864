import Foundation
import Postgres
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain

@Suite("The Kadalu flow, end to end")
struct KadaluFlowTests {
    @Test("300 tasks with 1–3 participants all complete; every participant ran; outcomes and events agree")
    func manyTasks() async throws {
        let counter = InvocationCounter()
        try await Deployment.run(handlers: { _ in
            var registry = HandlerRegistry.builtins()
            registry.register("count", ClosureHandler { work in
                await counter.record(work)
                return ["node": .string(work.node)]
            })
            return registry
        }) { deployment in
            let nodes = ["n1", "n2", "n3"]
            var requests: [SubmitTaskRequest] = []
            for index in 0..<300 {
                let participants = Array(nodes.shuffled().prefix(1 + index % 3))
                requests.append(SubmitTaskRequest(type: "count", participatingNodes: participants, payload: ["i": .integer(Int64(index))]))
            }
            var submitted: [TaskObject] = []
            for chunk in stride(from: 0, to: requests.count, by: 100) {
                submitted += try await deployment.client.submitBatch(cluster: Deployment.cluster,
                                                                     Array(requests[chunk..<chunk + 100]))
            }
            #expect(submitted.count == 300)
            for task in submitted {
                let detail = try await deployment.finished(task.id, within: .seconds(60))
                #expect(detail.task.state == .completed, "task \(task.id): \(detail.task.error ?? "")")
                #expect(detail.task.participants.map(\.node) == task.participatingNodes)
                #expect(detail.task.participants.allSatisfy { $0.state == .completed && $0.attempt == 1 })
                #expect(detail.children.isEmpty)
                #expect(detail.task.result?[task.participatingNodes[0]] == ["node": .string(task.participatingNodes[0])])
            }
            let expectedCalls = requests.map(\.participatingNodes.count).reduce(0, +)
            #expect(await counter.total == expectedCalls)
            #expect(await counter.calls.values.allSatisfy { $0 == 1 }, "each participant ran once per task")
            // The history tells the same story: submit, claim, completion for every root task.
            let transitions: [String] = try await deployment.store.pool.withConnection { connection in
                try connection.query("""
                    SELECT coalesce(e.from_state, '-') || '>' || e.to_state AS step, count(*) AS n
                      FROM task_events e JOIN tasks t ON t.cluster_id = e.cluster_id AND t.id = e.task_id
                     WHERE t.parent_id IS NULL GROUP BY 1 ORDER BY 1
                    """).map { row throws(PostgresError) in
                    "\(try row.decode("step", as: String.self))=\(try row.decode("n", as: Int.self))"
                }
            }
            #expect(transitions == ["->queued=300", "queued>received=300", "received>completed=300"])
        }
    }

    @Test("a volume create names its follow-up: when it completes, the record task runs on its node with the create's result")
    func followUp() async throws {
        let recorded = Recorded()
        try await Deployment.run(handlers: { _ in
            var registry = HandlerRegistry.builtins()
            registry.register("volume_create", ClosureHandler { _ in ["bricks": .integer(2)] })
            registry.register("volume_record", ClosureHandler { work in
                await recorded.add(work.node, work.payload)
                return nil
            })
            return registry
        }) { deployment in
            let create = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(
                type: "volume_create", participatingNodes: ["n2", "n3"], payload: ["name": "vol1"],
                onFinish: .object(["type": .string("volume_record"), "node": .string("n1")])))
            #expect(create.onFinish == .object(["type": .string("volume_record"), "node": .string("n1")]) && create.followUpID == nil)
            let created = try await deployment.finished(create.id)
            #expect(created.task.state == .completed)
            let followUpID = try #require(created.task.followUpID)
            let record = try await deployment.finished(followUpID)
            #expect(record.task.state == .completed && record.task.type == "volume_record" && record.task.assignedNode == "n1")
            let runs = await recorded.runs
            #expect(runs.count == 1 && runs.first?.node == "n1")
            let payload = try #require(runs.first?.payload)
            #expect(payload["task_id"] == .integer(create.id) && payload["state"] == .string("completed")
                    && payload["payload"] == .object(["name": .string("vol1")]), "\(payload)")
            #expect(payload["result"]?["n2"] == .object(["bricks": .integer(2)]), "the create's result, as the task has it")

            // Refused up front when it names no node of the cluster (the create runs nothing).
            let refused = try await APIContractTests.send(deployment, "POST", "/api/v1/clusters/\(Deployment.cluster)/tasks",
                                                          body: #"{"type": "volume_create", "participating_nodes": ["n2"], "on_finish": {"type": "volume_record", "node": "n9"}}"#)
            #expect(refused.status == 422 && String(decoding: refused.body, as: UTF8.self).contains("\"field\":\"on_finish.node\""), "\(refused.status) \(String(decoding: refused.body, as: UTF8.self))")
        }
    }

    actor Recorded {
        private(set) var runs: [(node: String, payload: JSONValue)] = []
        func add(_ node: String, _ payload: JSONValue) { runs.append((node, payload)) }
    }

    @Test("a failing participant and an unreachable one fail the task, naming the nodes; the others' outcomes stay")
    func failures() async throws {
        try await Deployment.run { deployment in
            // A node that registered once and is gone: nothing listens on its endpoint.
            _ = try await deployment.client.registerNode(cluster: Deployment.cluster, node: "n9",
                                                        RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let failing = try await deployment.client.submit(cluster: Deployment.cluster,
                SubmitTaskRequest(type: "fail", participatingNodes: ["n1", "n2"], payload: ["message": "disk full"], maxAttempts: 1))
            let unreachable = try await deployment.client.submit(cluster: Deployment.cluster,
                SubmitTaskRequest(type: "echo", participatingNodes: ["n1", "n9"], payload: ["k": "v"], maxAttempts: 1))
            let unknownType = try await deployment.client.submit(cluster: Deployment.cluster,
                SubmitTaskRequest(type: "no_such_type", participatingNodes: ["n2"], maxAttempts: 1))

            let failed = try await deployment.finished(failing.id)
            #expect(failed.task.state == .failed)
            #expect(failed.task.error?.contains("n1: disk full") == true)
            #expect(failed.task.error?.contains("n2: disk full") == true)

            let lost = try await deployment.finished(unreachable.id)
            #expect(lost.task.state == .failed)
            #expect(lost.task.error?.contains("n9") == true)
            let byNode = Dictionary(uniqueKeysWithValues: lost.task.participants.map { ($0.node, $0) })
            #expect(byNode["n1"]?.state == .completed)
            #expect(byNode["n1"]?.result == ["k": "v"])
            #expect(byNode["n9"]?.state == .failed)
            #expect(byNode["n9"]?.error?.contains("cannot reach node n9") == true)

            let unknown = try await deployment.finished(unknownType.id)
            #expect(unknown.task.state == .failed)
            #expect(unknown.task.error?.contains("no handler for task type no_such_type") == true)
        }
    }
}
