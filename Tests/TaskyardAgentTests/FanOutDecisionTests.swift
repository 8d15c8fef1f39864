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

    static func at(_ seconds: Double, _ node: String, _ state: ReportedState, error: String? = nil) -> ParticipantOutcome {
        var outcome = Self.outcome(node, state, error: error)
        outcome.finishedAt = Date(timeIntervalSince1970: seconds)
        return outcome
    }

    @Test("quorum of 3: two successes complete it (the second decides), the straggler stopped as not needed; two failures fail it")
    func quorum() {
        let met = FanOutDecision(outcomes: [Self.at(2, "n1", .completed), Self.at(5, "n2", .completed),
                                            Self.at(6, "n3", .cancelled, error: FanOutDecision.notNeeded)], stop: nil, policy: .quorum)
        #expect(met.verdict == .met && !met.needsRollback)
        let report = met.report(attempt: 1, lease: "l")
        #expect(report.state == .completed)
        #expect(report.participants.map(\.decided) == [false, true, false])
        #expect(report.result == ["n1": nil, "n2": nil, "n3": nil])
        let withAFailure = FanOutDecision(outcomes: [Self.at(1, "n1", .failed, error: "disk"), Self.at(2, "n2", .completed),
                                                     Self.at(3, "n3", .completed)], stop: nil, policy: .quorum)
        #expect(withAFailure.report(attempt: 1, lease: "l").state == .completed, "one failure of three is tolerated")
        let lost = FanOutDecision(outcomes: [Self.at(1, "n1", .completed), Self.at(2, "n2", .failed, error: "a"),
                                             Self.at(3, "n3", .failed, error: "b")], stop: nil, policy: .quorum)
        #expect(lost.verdict == .unreachable && lost.needsRollback, "the success is undone")
        #expect(lost.decidingNode == "n3", "the second failure made it unreachable")
        #expect(lost.report(attempt: 1, lease: "l").error == "n2: a; n3: b")
    }

    @Test("any: the first success completes it; every participant failing fails it, the last failure deciding")
    func any() {
        let first = FanOutDecision(outcomes: [Self.at(4, "n1", .cancelled, error: FanOutDecision.notNeeded), Self.at(1, "n2", .completed)],
                                   stop: nil, policy: .any)
        #expect(first.report(attempt: 1, lease: "l").state == .completed)
        #expect(first.decidingNode == "n2")
        let none = FanOutDecision(outcomes: [Self.at(1, "n1", .failed), Self.at(3, "n2", .failed)], stop: nil, policy: .any)
        #expect(none.verdict == .unreachable && !none.needsRollback)
        #expect(none.decidingNode == "n2")
    }

    @Test("at_least 2 of 4: met by two successes; out of reach once three failed, the stragglers' \"not needed\" left out of the error")
    func atLeast() {
        let policy = CompletionPolicy.atLeast(2)
        #expect(FanOutDecision(outcomes: [Self.at(1, "n1", .completed), Self.at(2, "n2", .failed), Self.at(3, "n3", .completed),
                                          Self.at(4, "n4", .cancelled, error: FanOutDecision.notNeeded)],
                               stop: nil, policy: policy).report(attempt: 1, lease: "l").state == .completed)
        let out = FanOutDecision(outcomes: [Self.at(1, "n1", .failed, error: "x"), Self.at(2, "n2", .failed, error: "y"),
                                            Self.at(3, "n3", .failed, error: "z"), Self.at(4, "n4", .cancelled, error: FanOutDecision.notNeeded)],
                                 stop: nil, policy: policy)
        #expect(out.decidingNode == "n3")
        #expect(out.report(attempt: 1, lease: "l").error == "n1: x; n2: y; n3: z")
    }

    @Test("the verdict as answers come in: undecided until the policy is met or out of reach")
    func verdictSoFar() {
        let answers = [Self.outcome("n1", .completed)]
        #expect(FanOutDecision.verdict(of: answers, policy: .all, participants: 3) == .undecided)
        #expect(FanOutDecision.verdict(of: answers, policy: .any, participants: 3) == .met)
        #expect(FanOutDecision.verdict(of: answers + [Self.outcome("n2", .failed)], policy: .quorum, participants: 3) == .undecided)
        #expect(FanOutDecision.verdict(of: [Self.outcome("n2", .failed)], policy: .all, participants: 3) == .unreachable)
        #expect(FanOutDecision.verdict(of: [Self.outcome("n1", .failed), Self.outcome("n2", .failed)], policy: .atLeast(2),
                                       participants: 3) == .unreachable)
    }

    @Test("a re-driven attempt: carried-forward successes count toward the policy, the report names only this attempt's participants, the result every node's")
    func carriedForward() {
        let carried = [Self.at(1, "n1", .completed), Self.at(1, "n3", .completed)]
        let decision = FanOutDecision(outcomes: carried + [Self.at(5, "n2", .completed)], stop: nil, policy: .all, carried: ["n1", "n3"])
        let report = decision.report(attempt: 2, lease: "l")
        #expect(report.state == .completed)
        #expect(report.participants.map(\.node) == ["n2"] && report.participants[0].decided)
        #expect(report.result == ["n1": nil, "n2": nil, "n3": nil])
        let failedAgain = FanOutDecision(outcomes: carried + [Self.at(5, "n2", .failed, error: "x")], stop: nil, policy: .all,
                                         carried: ["n1", "n3"])
        #expect(failedAgain.needsRollback, "the carried successes are undone with the attempt")
        var undone = carried
        for index in undone.indices { undone[index].rollback = ParticipantRollback(state: .completed) }
        let rolledBack = failedAgain.report(attempt: 2, lease: "l", afterRollback: undone + [Self.at(5, "n2", .failed, error: "x")])
        #expect(Set(rolledBack.participants.map(\.node)) == ["n1", "n2", "n3"], "rolled back here, so recorded here")
    }
}
