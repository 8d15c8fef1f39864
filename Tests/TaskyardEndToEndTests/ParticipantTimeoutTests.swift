import Testing
import TaskyardAPI
import TaskyardClient

@Suite("Participant timeout")
struct ParticipantTimeoutTests {
    @Test("a handler past the participant timeout is stopped, on the initiator's own node and on another, and the task fails saying so")
    func overdueHandlersStop() async throws {
        try await Deployment.run(nodes: ["n1", "n2"], agentSettings: { $0.participantTimeout = .seconds(1) }) { deployment in
            let started = ContinuousClock.now
            let task = try await deployment.client.submit(cluster: Deployment.cluster, SubmitTaskRequest(
                type: "sleep", participatingNodes: ["n1", "n2"], payload: ["seconds": 60], maxAttempts: 1))
            let detail = try await deployment.finished(task.id, within: .seconds(20))
            #expect(ContinuousClock.now - started < .seconds(20), "not the handlers' 60 s")
            #expect(detail.task.state == .failed)
            #expect(detail.task.participants.count == 2 && detail.task.participants.allSatisfy { $0.state == .failed })
            // n1 ran its part in-process, n2 behind its endpoint: both stopped by their own agent.
            #expect(detail.task.error?.contains("n1: the sleep handler on n1 ran longer than") == true, "\(detail.task.error ?? "")")
            #expect(detail.task.error?.contains("n2:") == true, "\(detail.task.error ?? "")")
        }
    }
}
