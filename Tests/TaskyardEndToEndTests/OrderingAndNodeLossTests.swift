import Foundation
import Postgres
import Synchronization
import Testing
import TaskyardAgent
import TaskyardAPI
import TaskyardDomain
import TaskyardTestSupport

/// Start and end of each handler run, by task id.
final class RunLog: Sendable {
    private let runs = Mutex<[Int64: (start: ContinuousClock.Instant, end: ContinuousClock.Instant)]>([:])
    func record(_ id: Int64, _ start: ContinuousClock.Instant, _ end: ContinuousClock.Instant) {
        runs.withLock { $0[id] = (start, end) }
    }
    var all: [Int64: (start: ContinuousClock.Instant, end: ContinuousClock.Instant)] { runs.withLock { $0 } }
}

@Suite("Ordering keys and lost nodes, end to end")
struct OrderingAndNodeLossTests {
    @Test("50 tasks on one ordering key across 3 agents run one at a time, in id order")
    func orderingAcrossAgents() async throws {
        let log = RunLog()
        try await Deployment.run(handlers: { _ in
            var registry = HandlerRegistry.builtins()
            registry.register("step", ClosureHandler { work in
                let start = ContinuousClock.now
                try await Task.sleep(for: .milliseconds(10))
                log.record(work.taskID, start, .now)
                return nil
            })
            return registry
        }) { deployment in
            let nodes = ["n1", "n2", "n3"]
            let requests = (0..<50).map { index in
                SubmitTaskRequest(type: "step", participatingNodes: [nodes[index % 3]], orderingKey: "volume-vol1")
            }
            // Unrelated tasks alongside, which must not be held back by the key.
            let free = try await deployment.client.submitBatch(cluster: Deployment.cluster,
                (0..<10).map { _ in SubmitTaskRequest(type: "noop", participatingNodes: ["n2"]) })
            let keyed = try await deployment.client.submitBatch(cluster: Deployment.cluster, requests)
            for task in keyed + free {
                #expect(try await deployment.finished(task.id, within: .seconds(90)).task.state == .completed)
            }
            let runs = log.all
            #expect(runs.count == 50)
            let ordered = keyed.map(\.id).compactMap { runs[$0] }
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                #expect(earlier.end <= later.start, "two tasks of one key overlapped, or ran out of order")
            }
        }
    }

    @Test("a task put off past the longest retry backoff does not hold its ordering key; one put off less does")
    func farFutureHeadOfAKey() async throws {
        try await Deployment.run(nodes: ["n1"]) { deployment in
            func submit(_ key: String, runAfter: Date? = nil) async throws -> TaskObject {
                try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(
                    type: "noop", participatingNodes: ["n1"], runAfter: runAfter, orderingKey: key))
            }
            // Put off to next year: the one behind it runs now.
            let nextYear = try await submit("far", runAfter: Date().addingTimeInterval(365 * 86_400))
            let behindFar = try await submit("far")
            #expect(try await deployment.finished(behindFar.id).task.state == .completed)
            #expect(try await deployment.client.task(cluster: Deployment.cluster, id: nextYear.id).task.state == .queued)
            // Put off by two seconds (less than a retry's backoff may be): the one behind it waits its turn.
            let soon = try await submit("near", runAfter: Date().addingTimeInterval(2))
            let behindSoon = try await submit("near")
            let first = try await deployment.finished(soon.id).task
            let second = try await deployment.finished(behindSoon.id).task
            #expect(first.state == .completed && second.state == .completed)
            #expect(try #require(second.receivedAt) >= (try #require(first.finishedAt)), "the task behind ran before its key's head")
        }
    }

    @Test("a node that stops polling goes offline; its queued tasks move to another participant and wait for it there (or fail at once, if they say so), a strict one stays and says why")
    func nodeLoss() async throws {
        try await Deployment.run(agentSettings: { configuration in
            // Polls that come back well within the node timeout: the live agents never look lost.
            configuration.pollWait = .seconds(1)
        }, serverSettings: { configuration in
            // Long enough that the submits reach n9 before it is declared offline, also on a loaded machine.
            configuration.nodeMonitor.nodeTimeout = .seconds(3)
            configuration.nodeMonitor.interval = .milliseconds(200)
        }) { deployment in
            // n9 registered once and never polls: its agent is gone.
            _ = try await deployment.client.registerNode(cluster: Deployment.cluster, node: "n9",
                                                        RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let movable = try await deployment.client.submit(cluster: Deployment.cluster,
                SubmitTaskRequest(type: "noop", participatingNodes: ["n9", "n2"], maxAttempts: 1))
            let failing = try await deployment.client.submit(cluster: Deployment.cluster,
                SubmitTaskRequest(type: "noop", participatingNodes: ["n9", "n2"], onOffline: .fail))
            let strict = try await deployment.client.submit(cluster: Deployment.cluster,
                SubmitTaskRequest(type: "noop", participatingNodes: ["n9", "n2"], affinity: .strict))
            #expect(movable.assignedNode == "n9" && strict.assignedNode == "n9")

            // Moved to n2, which would run it, but n9 is one of its participants: it waits for n9, and says so.
            try await eventually("the task moved to n2") {
                try await deployment.client.task(cluster: Deployment.cluster, id: movable.id).task.assignedNode == "n2"
            }
            let moved = try await deployment.client.task(cluster: Deployment.cluster, id: movable.id).task
            #expect(moved.state == .queued && moved.attempt == 0)
            #expect(moved.waitingFor == ["n9"])
            let events = try await deployment.client.events(cluster: Deployment.cluster, id: movable.id)
            #expect(events.contains { $0.detail == ["reason": "reassigned after node loss", "from": "n9", "to": "n2"] })

            // on_offline fail: it ends at once, never started.
            let failed = try await deployment.finished(failing.id, within: .seconds(30)).task
            #expect(failed.state == .failed && failed.attempt == 0)
            #expect(failed.error?.contains("n9") == true, "\(failed.error ?? "no error") attempt \(failed.attempt) on \(failed.assignedNode)")

            let waiting = try await deployment.client.task(cluster: Deployment.cluster, id: strict.id)
            #expect(waiting.task.state == .queued)
            #expect(waiting.task.assignedNode == "n9")
            let strictEvents = try await deployment.client.events(cluster: Deployment.cluster, id: strict.id)
            #expect(strictEvents.last?.detail?["reason"] == "awaiting node n9, which is offline: affinity strict keeps the task on it")
            let n9 = try await deployment.client.nodes(cluster: Deployment.cluster).first { $0.id == "n9" }
            #expect(n9?.status == .offline)
        }
    }
}
