import Foundation
import Testing
import TaskyardAPI
import TaskyardClient
import TaskyardTestSupport

@Suite("Waiting for a task")
struct WaitTests {
    @Test("a wait returns as soon as the task finishes, woken by its notification, and 408 with the task on timeout")
    func waits() async throws {
        // The safety re-check is an hour away: an answer before that can only come from the notification,
        // however slow a loaded machine makes the rest.
        try await Deployment.run(nodes: ["n1"], serverSettings: { $0.waitRecheckInterval = .seconds(3600) }) { deployment in
            let clock = ContinuousClock()
            let task = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "sleep", participatingNodes: ["n1"], payload: ["seconds": 1]))
            let started = clock.now
            let (done, timedOut) = try await deployment.client.wait(cluster: "c1", id: task.id, timeout: .seconds(60))
            let waited = clock.now - started
            #expect(!timedOut)
            #expect(done.state == .completed)
            #expect(waited < .seconds(60), "waited \(waited)")

            // Nothing runs on n9: the wait times out and answers 408 with the task as it stands.
            _ = try await deployment.client.registerNode(cluster: "c1", node: "n9", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            let stuck = try await deployment.client.submit(cluster: "c1", SubmitTaskRequest(type: "noop", participatingNodes: ["n9"]))
            let before = clock.now
            let (still, expired) = try await deployment.client.wait(cluster: "c1", id: stuck.id, timeout: .seconds(1))
            #expect(expired)
            #expect(still.state == .queued)
            #expect(clock.now - before >= .seconds(1))

            // The command line: exit 0 when completed, 124 on timeout, 1 when failed.
            func waitCommand(_ id: Int64, _ timeout: String) async throws -> Int32 {
                try await TestEnvironment.runTaskyardAsync(["task", "wait", String(id), "--cluster", "c1", "--timeout", timeout,
                                                            "-q", "--server", deployment.serverURL], environment: deployment.cliEnvironment).status
            }
            #expect(try await waitCommand(task.id, "5") == 0)
            #expect(try await waitCommand(stuck.id, "0.5") == 124)
            let failing = try await deployment.client.submit(cluster: "c1",
                SubmitTaskRequest(type: "fail", participatingNodes: ["n1"], maxAttempts: 1))
            #expect(try await waitCommand(failing.id, "30") == 1)
            _ = try await deployment.client.cancel(cluster: "c1", id: stuck.id)
            #expect(try await waitCommand(stuck.id, "5") == 2)
        }
    }
}
