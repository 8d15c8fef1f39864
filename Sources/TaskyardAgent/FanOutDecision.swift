import Foundation
import TaskyardDomain

/// What a fan-out's participant outcomes mean, decided without any I/O: whether the participants that
/// succeeded must be rolled back, and the report the attempt ends with. The agent calls the participants
/// and the rollbacks; everything it concludes from their answers is here, where a unit test can reach it.
struct FanOutDecision: Sendable, Equatable {
    /// Why the fan-out was stopped before every participant answered, if it was.
    let stop: StopReason?
    /// The outcomes as the agent sees them once the stop is taken into account.
    let outcomes: [ParticipantOutcome]

    init(outcomes: [ParticipantOutcome], stop: StopReason?) {
        self.stop = stop
        guard case .timedOut(let seconds) = stop else {
            self.outcomes = outcomes
            return
        }
        // Past the timeout, every participant that had not finished failed by it.
        self.outcomes = outcomes.map { outcome in
            guard outcome.state != .completed else { return outcome }
            var stopped = outcome
            stopped.state = .failed
            stopped.error = Self.timeoutMessage(seconds)
            return stopped
        }
    }

    static func timeoutMessage(_ seconds: Int) -> String { "timed out after \(seconds) s" }

    /// Some participants failed and some succeeded: the successes are undone before the report (a
    /// cancelled task is not rolled back: its participants were told to stop, not to undo).
    var needsRollback: Bool {
        guard stop != .cancelRequested else { return false }
        let failed = outcomes.filter { $0.state != .completed }.count
        return failed > 0 && failed < outcomes.count
    }

    /// The outcome that settled the attempt under the policy every task has today (`all`): the last
    /// success of a completed attempt, the first failure of a failed one; none when it was cancelled.
    var decidingNode: String? {
        guard stop != .cancelRequested, !outcomes.isEmpty else { return nil }
        func finished(_ outcome: ParticipantOutcome) -> Date { outcome.finishedAt ?? .distantFuture }
        let failed = outcomes.filter { $0.state != .completed }
        if failed.isEmpty { return outcomes.max { finished($0) < finished($1) }?.node }
        return failed.min { finished($0) < finished($1) }?.node
    }

    /// The report of the attempt, given the outcomes after any rollback (each participant's `rollback`
    /// set where one ran).
    func report(attempt: Int, lease: String, afterRollback rolledBackOutcomes: [ParticipantOutcome]? = nil) -> TaskReport {
        let decider = decidingNode
        let outcomes = (rolledBackOutcomes ?? self.outcomes).map { outcome in
            var outcome = outcome
            outcome.decided = outcome.node == decider
            return outcome
        }
        if stop == .cancelRequested {
            return TaskReport(attempt: attempt, lease: lease, state: .cancelled, error: "cancelled on request",
                              participants: outcomes.map { outcome in
                                  var outcome = outcome
                                  if outcome.state == .failed { outcome.state = .cancelled }
                                  return outcome
                              })
        }
        let failed = self.outcomes.filter { $0.state != .completed }
        if failed.isEmpty {
            let results = RawJSON(members: outcomes.map { ($0.node, $0.result ?? .null) })
            return TaskReport(attempt: attempt, lease: lease, state: .completed, result: results, participants: outcomes)
        }
        var error: String
        if case .timedOut(let seconds) = stop {
            error = Self.timeoutMessage(seconds)
        } else {
            error = failed.map { "\($0.node): \($0.error ?? "failed")" }.joined(separator: "; ")
        }
        let rolledBack = outcomes.filter { $0.rollback?.state == .completed }.map(\.node)
        if !rolledBack.isEmpty { error += " (rolled back on \(rolledBack.joined(separator: ", ")))" }
        return TaskReport(attempt: attempt, lease: lease, state: .failed, error: error, participants: outcomes)
    }
}
