import Foundation
import Testing
@testable import TaskyardAgent
import TaskyardDomain

/// The fan-out's conclusions from its participants' answers, without a network.
@Suite("Fan-out decision")
struct FanOutDecisionTests {
    static func outcome(_ node: String, _ state: ReportedState, result: RawJSON? = nil, error: String? = nil) -> ParticipantOutcome {
        ParticipantOutcome(node: node, state: state, result: result, error: error)
    }

    @Test("every participant completed: completed, with each one's result under its node")
    func allCompleted() {
        let decision = FanOutDecision(outcomes: [Self.outcome("n1", .completed, result: ["v": 1]), Self.outcome("n2", .completed)], stop: nil)
        #expect(!decision.needsRollback)
        let report = decision.report(attempt: 2, lease: "l")
        #expect(report.state == .completed)
        #expect(report.result == ["n1": ["v": 1], "n2": nil])
        #expect(report.attempt == 2 && report.lease == "l")
    }

    @Test("some failed, some completed: roll back first, then failed naming the failures and the rollbacks")
    func partialFailure() {
        let decision = FanOutDecision(outcomes: [Self.outcome("n1", .completed, result: ["v": 1]),
                                                 Self.outcome("n2", .failed, error: "disk full")], stop: nil)
        #expect(decision.needsRollback)
        var undone = Self.outcome("n1", .completed, result: ["v": 1])
        undone.rollback = ParticipantRollback(state: .completed, result: ["released": true])
        let rolledBack = [undone, Self.outcome("n2", .failed, error: "disk full")]
        let report = decision.report(attempt: 1, lease: "l", afterRollback: rolledBack)
        #expect(report.state == .failed)
        #expect(report.error == "n2: disk full (rolled back on n1)")
        #expect(report.participants.map(\.rollback) == [undone.rollback, nil])
        #expect(report.participants.map(\.decided) == [false, true], "the failure decided the attempt")
    }

    @Test("all failed: nothing to roll back")
    func allFailed() {
        let decision = FanOutDecision(outcomes: [Self.outcome("n1", .failed), Self.outcome("n2", .failed, error: "x")], stop: nil)
        #expect(!decision.needsRollback)
        #expect(decision.report(attempt: 1, lease: "l").error == "n1: failed; n2: x")
    }

    @Test("a cancel: cancelled, failures read as cancelled, no rollback")
    func cancelled() {
        let decision = FanOutDecision(outcomes: [Self.outcome("n1", .completed), Self.outcome("n2", .failed, error: "stopped")],
                                      stop: .cancelRequested)
        #expect(!decision.needsRollback)
        let report = decision.report(attempt: 1, lease: "l")
        #expect(report.state == .cancelled)
        #expect(report.participants.map(\.state) == [.completed, .cancelled])
    }

    @Test("a timeout: the unfinished participants failed by it, the finished ones rolled back, failed \"timed out after N s\"")
    func timedOut() {
        let decision = FanOutDecision(outcomes: [Self.outcome("n1", .completed), Self.outcome("n2", .cancelled, error: "stopped")],
                                      stop: .timedOut(seconds: 7))
        #expect(decision.outcomes.map(\.state) == [.completed, .failed])
        #expect(decision.outcomes[1].error == "timed out after 7 s")
        #expect(decision.needsRollback)
        let report = decision.report(attempt: 1, lease: "l")
        #expect(report.state == .failed)
        #expect(report.error == "timed out after 7 s")
    }

    @Test("under `all`, the last success decides a completed attempt, the first failure a failed one, nothing a cancelled one")
    func decidingOutcome() {
        func at(_ seconds: Double, _ outcome: ParticipantOutcome) -> ParticipantOutcome {
            var outcome = outcome
            outcome.finishedAt = Date(timeIntervalSince1970: seconds)
            return outcome
        }
        let completed = FanOutDecision(outcomes: [at(3, Self.outcome("n1", .completed)), at(9, Self.outcome("n2", .completed)),
                                                  at(5, Self.outcome("n3", .completed))], stop: nil)
        #expect(completed.decidingNode == "n2")
        #expect(completed.report(attempt: 1, lease: "l").participants.map(\.decided) == [false, true, false])
        let failed = FanOutDecision(outcomes: [at(1, Self.outcome("n1", .completed)), at(8, Self.outcome("n2", .failed)),
                                               at(4, Self.outcome("n3", .failed))], stop: nil)
        #expect(failed.decidingNode == "n3")
        let cancelled = FanOutDecision(outcomes: [at(1, Self.outcome("n1", .failed))], stop: .cancelRequested)
        #expect(cancelled.decidingNode == nil)
        #expect(cancelled.report(attempt: 1, lease: "l").participants.allSatisfy { !$0.decided })
    }
}
