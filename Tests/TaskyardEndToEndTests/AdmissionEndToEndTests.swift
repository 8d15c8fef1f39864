import Foundation
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardTestSupport

/// Gang admission and concurrency keys with real agents over HTTP (issue 24, items 3 and 4).
@Suite("Gang admission and concurrency keys, end to end")
struct AdmissionEndToEndTests {
    @Test("a task on a node whose one slot is taken waits, says for which node, and runs whole once it frees")
    func waitsForItsNodes() async throws {
        try await Deployment.run(agentSettings: { configuration in
            if configuration.node == "n2" { configuration.capacity = 1 }
        }) { deployment in
            let nodes = try await deployment.client.nodes(cluster: "c1")
            #expect(nodes.first { $0.id == "n2" }?.capacity == 1)
            let holder = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                type: "sleep", participatingNodes: ["n1", "n2"], payload: ["seconds": 1.5]))
            _ = try await deployment.detail(holder.id, until: "the holder runs") { $0.task.state == .received }
            #expect(try await deployment.client.nodes(cluster: "c1").first { $0.id == "n2" }?.inUse == 1)
            let waiting = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                type: "echo", participatingNodes: ["n3", "n2"], payload: ["x": 1]))
            let seen = try await deployment.client.task(cluster: "c1", id: waiting.id).task
            #expect(seen.state == .queued && seen.waitingFor == ["n2"], "\(seen.state) \(String(describing: seen.waitingFor))")
            let show = try await TestEnvironment.runTaskyardAsync(["task", "show", String(waiting.id), "--cluster", "c1",
                                                                   "--server", deployment.serverURL], environment: deployment.cliEnvironment)
            #expect(show.output.contains("waiting for   n2 (no free slot, or offline)"), "\(show.output)")
            let nodeList = try await TestEnvironment.runTaskyardAsync(["node", "list", "--cluster", "c1", "--server", deployment.serverURL],
                                                                      environment: deployment.cliEnvironment)
            #expect(nodeList.output.split(separator: "\n").contains { $0.hasPrefix("n2") && $0.contains(" 1 ") }, "\(nodeList.output)")

            let done = try await deployment.finished(waiting.id).task
            let held = try await deployment.finished(holder.id).task
            #expect(done.state == .completed && done.waitingFor == nil)
            #expect(try #require(done.receivedAt) >= (try #require(held.finishedAt)), "it started only once n2's slot was free")
            #expect(done.participants.allSatisfy { $0.attempt == 1 && $0.state == .completed }, "both ran in its one attempt")
            #expect(try await deployment.client.nodes(cluster: "c1").allSatisfy { $0.inUse == 0 })
        }
    }

    @Test("three tasks of one concurrency key on three initiators run one at a time, in submission order")
    func concurrencyKeyOneAtATime() async throws {
        // The handlers' own clocks: a task's `received_at` is its claim statement's start, which may come
        // before the previous task's report commits (the claim then takes the slot only once it has).
        let log = RunLog()
        try await Deployment.run(handlers: { _ in
            var registry = HandlerRegistry.builtins()
            registry.register("step", ClosureHandler { work in
                let start = ContinuousClock.now
                try await Task.sleep(for: .milliseconds(400))
                log.record(work.taskID, start, .now)
                return nil
            })
            return registry
        }) { deployment in
            var ids: [Int64] = []
            for node in ["n1", "n2", "n3"] {
                ids.append(try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                    type: "step", participatingNodes: [node], concurrencyKey: "vol1")).id)
            }
            var finished: [TaskObject] = []
            for id in ids { finished.append(try await deployment.finished(id).task) }
            #expect(finished.allSatisfy { $0.state == .completed && $0.concurrencyKey == "vol1" && $0.concurrencyLimit == 1 })
            let runs = ids.compactMap { log.all[$0] }.sorted { $0.start < $1.start }
            #expect(runs.count == 3)
            for (earlier, later) in zip(runs, runs.dropFirst()) {
                #expect(earlier.end <= later.start, "two tasks of the key ran at once")
            }
        }
    }

    @Test("task submit takes the policy, the key and its strategy; task show names them")
    func commandLine() async throws {
        try await Deployment.run { deployment in
            func taskyard(_ arguments: String...) async throws -> String {
                let run = try await TestEnvironment.runTaskyardAsync(arguments + ["--server", deployment.serverURL, "--cluster", "c1"],
                                                                     environment: deployment.cliEnvironment)
                #expect(run.status == 0, "taskyard \(arguments.joined(separator: " ")): \(run.output)")
                return run.output
            }
            _ = try await taskyard("task", "submit", "sleep", "--nodes", "n1,n2,n3", "--payload", #"{"seconds": 30}"#,
                                   "--complete-when", "2", "--concurrency-key", "vol1", "--concurrency-limit", "1",
                                   "--on-offline", "fail")
            let refused = try await taskyard("task", "submit", "noop", "--nodes", "n1", "--concurrency-key", "vol1",
                                             "--on-limit", "cancel_newest", "--json")
            let cancelled = try APIJSON.decode(TaskObject.self, from: Data(refused.utf8))
            #expect(cancelled.state == .cancelled && cancelled.concurrencyKey == "vol1")
            let show = try await taskyard("task", "show", "1")
            #expect(show.contains("complete when at least 2"), "\(show)")
            #expect(show.contains("concurrency   vol1, at most 1 at once"), "\(show)")
            let bad = try await TestEnvironment.runTaskyardAsync(["task", "submit", "noop", "--nodes", "n1", "--on-offline", "never",
                                                                  "--server", deployment.serverURL, "--cluster", "c1"],
                                                                 environment: deployment.cliEnvironment)
            #expect(bad.status != 0 && bad.output.contains("--on-offline must be wait or fail"), "\(bad.output)")
            _ = try await deployment.client.cancel(cluster: "c1", id: 1)
            _ = try await deployment.finished(1)
        }
    }

    @Test("cancel_newest answers an arrival at a full key already cancelled, with the key in its reason")
    func cancelNewest() async throws {
        try await Deployment.run { deployment in
            let first = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                type: "sleep", participatingNodes: ["n1"], payload: ["seconds": 30], concurrencyKey: "probe", onLimit: .cancelNewest))
            let second = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                type: "noop", participatingNodes: ["n2"], concurrencyKey: "probe", onLimit: .cancelNewest))
            #expect(first.state != .cancelled)
            #expect(second.state == .cancelled)
            let events = try await deployment.client.events(cluster: "c1", id: second.id)
            #expect(events.last?.to == .cancelled)
            _ = try await deployment.client.cancel(cluster: "c1", id: first.id)
            #expect(try await deployment.finished(first.id).task.state == .cancelled)
        }
    }
}
