import Foundation
import Synchronization
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardTestSupport

/// `complete_when` (issue 24): the initiator decides as outcomes arrive, and stops what is no longer needed.
@Suite("Completion policies")
struct CompletionPolicyTests {
    /// Handlers per node: `write` answers at once on n1 and n2 and takes a minute on n3 (recording whether it
    /// was stopped); `broken` fails on every node.
    final class Stopped: Sendable {
        let nodes = Mutex<[String]>([])
    }

    static func handlers(stopped: Stopped) -> @Sendable (String) -> HandlerRegistry {
        { node in
            var registry = HandlerRegistry.builtins()
            registry.register("write", ClosureHandler { work in
                if work.node == "n3" {
                    do { try await Task.sleep(for: .seconds(60)) } catch {
                        stopped.nodes.withLock { $0.append(work.node) }
                        throw error
                    }
                }
                return ["wrote": .string(work.node)]
            })
            registry.register("broken", ClosureHandler { work in throw HandlerFailure("\(work.node) is broken") })
            _ = node
            return registry
        }
    }

    @Test("quorum of three with a slow third: completed by the second success, the third stopped and recorded cancelled, not needed")
    func quorumDoesNotWaitForTheSlowest() async throws {
        let stopped = Stopped()
        try await Deployment.run(handlers: Self.handlers(stopped: stopped)) { deployment in
            let clock = ContinuousClock()
            let started = clock.now
            let task = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                type: "write", participatingNodes: ["n1", "n2", "n3"], completeWhen: "quorum"))
            #expect(task.completeWhen == "quorum")
            let done = try await deployment.finished(task.id, within: .seconds(20))
            #expect(clock.now - started < .seconds(15), "waited \(clock.now - started) for the slowest")
            #expect(done.task.state == .completed)
            let byNode = Dictionary(uniqueKeysWithValues: done.task.participants.map { ($0.node, $0) })
            #expect(byNode["n1"]?.state == .completed && byNode["n2"]?.state == .completed)
            #expect(byNode["n3"]?.state == .cancelled && byNode["n3"]?.error == "not needed")
            #expect(done.task.participants.filter(\.decided).count == 1, "one outcome decided")
            #expect(byNode["n3"]?.decided == false)
            try await eventually("n3's handler is stopped", within: .seconds(10)) { stopped.nodes.withLock { $0 } == ["n3"] }
            // As a person reads it: the policy, the straggler not needed, the outcome that decided marked.
            let shown = try await TestEnvironment.runTaskyardAsync(["task", "show", String(task.id), "--cluster", "c1",
                                                                    "--server", deployment.serverURL],
                                                                   environment: deployment.cliEnvironment)
            #expect(shown.output.contains("complete when quorum"), "\(shown.output)")
            #expect(shown.output.split(separator: "\n").contains { $0.hasPrefix("n3") && $0.contains("not needed") }, "\(shown.output)")
            #expect(shown.output.split(separator: "\n").filter { $0.contains(" * ") || $0.hasPrefix("n1 *") || $0.hasPrefix("n2 *") }.count == 1,
                    "\(shown.output)")
        }
    }

    @Test("any: one success completes it; every participant failing fails it")
    func any() async throws {
        let stopped = Stopped()
        try await Deployment.run(handlers: Self.handlers(stopped: stopped)) { deployment in
            let one = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                type: "write", participatingNodes: ["n3", "n1"], completeWhen: "any"))
            let done = try await deployment.finished(one.id, within: .seconds(20))
            #expect(done.task.state == .completed)
            #expect(done.task.participants.first { $0.node == "n1" }?.decided == true)
            let none = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                type: "broken", participatingNodes: ["n1", "n2"], maxAttempts: 1, completeWhen: "any"))
            let failed = try await deployment.finished(none.id)
            #expect(failed.task.state == .failed)
            #expect(failed.task.error?.contains("n1 is broken") == true && failed.task.error?.contains("n2 is broken") == true)
        }
    }

    @Test("a policy that is no policy, or asks for more successes than participants, is refused with 422 naming the field")
    func refusals() async throws {
        try await Deployment.run(nodes: ["n1", "n2"]) { deployment in
            for (policy, field) in [(["at_least": 3] as JSONValue, "complete_when.at_least"), ("most", "complete_when"),
                                    (["at_least": 0], "complete_when.at_least")] {
                let refused = try await #require(throws: TaskyardClient.Failure.self) {
                    try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                        type: "noop", participatingNodes: ["n1", "n2"], completeWhen: policy))
                }
                #expect(refused.status == 422 && refused.error?.error.field == field, "\(policy): \(refused)")
            }
            let batch = try await #require(throws: TaskyardClient.Failure.self) {
                try await deployment.client.submitBatch(cluster: "c1", [
                    SubmitTaskRequest(type: "noop", participatingNodes: ["n1"]),
                    SubmitTaskRequest(type: "noop", participatingNodes: ["n1"], completeWhen: ["at_least": 2]),
                ])
            }
            #expect(batch.status == 422 && batch.error?.error.field == "tasks[1].complete_when.at_least", "\(batch)")
            let written = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(
                type: "noop", participatingNodes: ["n1", "n2"], completeWhen: ["at_least": 1]))
            #expect(written.completeWhen == ["at_least": 1])
            #expect(try await deployment.finished(written.id).task.state == .completed)
        }
    }
}
