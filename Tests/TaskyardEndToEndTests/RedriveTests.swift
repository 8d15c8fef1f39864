import Foundation
import Synchronization
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// Re-driving only what failed (issue 24): a retry runs the participants without a completed outcome; the
/// others' outcomes carry forward, with the attempt they came from.
@Suite("Re-drive")
struct RedriveTests {
    /// Handler runs per node, and the nodes whose `write` fails until they are fixed.
    final class Runs: Sendable {
        let calls = Mutex<[String: Int]>([:])
        let broken = Mutex<Set<String>>([])
        var total: Int { calls.withLock { $0.values.reduce(0, +) } }
        func count(_ node: String) -> Int { calls.withLock { $0[node] ?? 0 } }

        func handlers(_ node: String) -> HandlerRegistry {
            var registry = HandlerRegistry.builtins()
            registry.register("write", ClosureHandler { work in
                let run = self.calls.withLock { calls in
                    calls[work.node, default: 0] += 1
                    return calls[work.node]!
                }
                if self.broken.withLock({ $0.contains(work.node) }) { throw HandlerFailure("\(work.node) is broken (run \(run))") }
                return ["run": .integer(Int64(run))]
            })
            _ = node
            return registry
        }
    }

    @Test("twenty participants, one failing once: the automatic retry runs that one handler, not twenty; the others carry forward")
    func automaticRetryRunsOnlyTheFailed() async throws {
        let runs = Runs()
        runs.broken.withLock { $0 = ["n7"] }
        let nodes = (1...20).map { "n\($0)" }
        try await TestDatabase.withPool { pool in
            var configuration = TaskStore.Configuration()
            configuration.retry = RetryPolicy(base: .seconds(0.5), cap: .seconds(0.5))
            try await Deployment.run(on: TaskStore(pool: pool, configuration: configuration), nodes: nodes,
                                     handlers: runs.handlers) { deployment in
                let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "write", participatingNodes: nodes,
                                                                                               maxAttempts: 3))
                // The first attempt ends failed on n7 alone; fixed before the backoff ends, the retry runs n7 only.
                try await eventually("n7's first run", within: .seconds(30)) { runs.count("n7") >= 1 }
                runs.broken.withLock { $0 = [] }
                let done = try await deployment.finished(task.id, within: .seconds(60))
                let story = try await deployment.client.events(cluster: "c1", id: task.id).map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue)@\($0.attempt) \($0.detail.map { "\($0)" } ?? "")" }
                #expect(done.task.state == .completed && done.task.attempt == 2, "\(done.task.state) at attempt \(done.task.attempt): \(story)")
                #expect(runs.total == 21, "20 runs, then n7's again: \(runs.calls.withLock { $0 })")
                #expect(runs.count("n7") == 2)
                let byNode = Dictionary(uniqueKeysWithValues: done.task.participants.map { ($0.node, $0) })
                #expect(byNode["n7"]?.attempt == 2 && byNode["n7"]?.state == .completed)
                #expect(nodes.filter { $0 != "n7" }.allSatisfy { byNode[$0]?.attempt == 1 && byNode[$0]?.state == .completed },
                        "the others' outcomes carried forward from attempt 1")
                if case .object(let results)? = done.task.result?.value { #expect(results.count == 20, "every node's result") }
                else { Issue.record("no result object: \(String(describing: done.task.result))") }
            }
        }
    }

    @Test("a retry by hand: failed (the default) runs only the participant that failed; all runs every one again")
    func retryByHand() async throws {
        let runs = Runs()
        runs.broken.withLock { $0 = ["n2"] }
        try await TestDatabase.withPool { pool in
            try await Deployment.run(on: TaskStore(pool: pool), nodes: ["n1", "n2", "n3"], handlers: runs.handlers) { deployment in
                let first = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                    type: "write", participatingNodes: ["n1", "n2", "n3"], maxAttempts: 1))
                #expect(try await deployment.finished(first.id).task.state == .failed)
                let second = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                    type: "write", participatingNodes: ["n1", "n2", "n3"], maxAttempts: 1))
                #expect(try await deployment.finished(second.id).task.state == .failed)
                #expect(runs.total == 6)
                runs.broken.withLock { $0 = [] }

                _ = try await deployment.client.retry(cluster: "c1", id: first.id)
                let redriven = try await deployment.finished(first.id)
                #expect(redriven.task.state == .completed)
                #expect(runs.total == 7 && runs.count("n2") == 3, "only n2 ran again: \(runs.calls.withLock { $0 })")
                #expect(redriven.task.participants.map(\.attempt) == [1, 2, 1])

                _ = try await deployment.client.retry(cluster: "c1", id: second.id, participants: "all")
                let again = try await deployment.finished(second.id)
                #expect(again.task.state == .completed)
                #expect(runs.total == 10, "every participant ran again: \(runs.calls.withLock { $0 })")
                #expect(again.task.participants.map(\.attempt) == [2, 2, 2])

                let refused = try await #require(throws: TaskyardClient.Failure.self) {
                    try await deployment.client.retry(cluster: "c1", id: second.id, participants: "some")
                }
                #expect(refused.status == 422 && refused.error?.error.field == "participants", "\(refused)")
                let cli = try await TestEnvironment.runTaskyardAsync(["task", "retry", String(second.id), "--participants", "some",
                                                                      "--cluster", "c1", "--server", deployment.serverURL],
                                                                     environment: deployment.cliEnvironment)
                #expect(cli.status != 0 && cli.output.contains("--participants takes failed or all"), "\(cli.output)")
            }
        }
    }
}
