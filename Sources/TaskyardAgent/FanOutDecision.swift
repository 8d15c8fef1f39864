import Foundation
import TaskyardDomain

/// What a fan-out's participant outcomes mean, decided without any I/O: whether the task's completion
/// policy was met, whether the participants that succeeded must be rolled back, and the report the attempt
/// ends with. The agent calls the participants and the rollbacks; everything it concludes from their answers
/// is here, where a unit test can reach it.
struct FanOutDecision: Sendable, Equatable {
    /// Why the fan-out was stopped before every participant answered, if it was.
    let stop: StopReason?
    /// The outcomes as the agent sees them once the stop is taken into account.
    let outcomes: [ParticipantOutcome]
    /// The task's `complete_when`.
    let policy: CompletionPolicy
    /// Participants whose completed outcome an earlier attempt recorded, carried forward: they count toward
    /// the policy, and the report names them only where this attempt rolled them back.
    let carried: Set<String>

    /// The error of a participant stopped because the policy was settled without it.
    static let notNeeded = "not needed"

    init(outcomes: [ParticipantOutcome], stop: StopReason?, policy: CompletionPolicy = .all, carried: Set<String> = []) {
        self.stop = stop
        self.policy = policy
        self.carried = carried
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

    /// Whether these outcomes, some of them perhaps not in yet, settle `policy` for `participants`: the
    /// fan-out's test after each answer.
    static func verdict(of outcomes: some Collection<ParticipantOutcome>, policy: CompletionPolicy,
                        participants: Int) -> CompletionPolicy.Verdict {
        let succeeded = outcomes.count { $0.state == .completed }
        return policy.verdict(succeeded: succeeded, failed: outcomes.count - succeeded, of: participants)
    }

    /// What the outcomes settle, every participant having answered (or been stopped).
    var verdict: CompletionPolicy.Verdict {
        Self.verdict(of: outcomes, policy: policy, participants: outcomes.count)
    }

    /// The policy can no longer be met but some participants succeeded: those are undone before the report
    /// (a cancelled task is not rolled back: its participants were told to stop, not to undo).
    var needsRollback: Bool {
        guard stop != .cancelRequested else { return false }
        return verdict == .unreachable && outcomes.contains { $0.state == .completed }
    }

    /// The outcome that settled the attempt: the success that met the policy (the `required`-th, by when
    /// it finished), or the failure after which it could no longer be met; none when it was cancelled.
    var decidingNode: String? {
        guard stop != .cancelRequested, !outcomes.isEmpty else { return nil }
        let required = policy.required(of: outcomes.count)
        func byFinish(_ outcomes: [ParticipantOutcome]) -> [ParticipantOutcome] {
            outcomes.sorted { ($0.finishedAt ?? .distantFuture) < ($1.finishedAt ?? .distantFuture) }
        }
        let succeeded = byFinish(outcomes.filter { $0.state == .completed })
        if succeeded.count >= required { return succeeded[required - 1].node }
        let failed = byFinish(outcomes.filter { $0.state != .completed })
        let tolerated = outcomes.count - required
        return failed.count > tolerated ? failed[tolerated].node : nil
    }

    /// The report of the attempt, given the outcomes after any rollback (each participant's `rollback`
    /// set where one ran).
    func report(attempt: Int, lease: String, afterRollback rolledBackOutcomes: [ParticipantOutcome]? = nil) -> TaskReport {
        let decider = decidingNode
        let all = (rolledBackOutcomes ?? self.outcomes).map { outcome in
            var outcome = outcome
            outcome.decided = outcome.node == decider
            return outcome
        }
        // This attempt's outcomes: a carried-forward one is recorded again only when this attempt rolled it back.
        let outcomes = all.filter { !carried.contains($0.node) || $0.rollback != nil }
        if stop == .cancelRequested {
            return TaskReport(attempt: attempt, lease: lease, state: .cancelled, error: "cancelled on request",
                              participants: outcomes.map { outcome in
                                  var outcome = outcome
                                  if outcome.state == .failed { outcome.state = .cancelled }
                                  return outcome
                              })
        }
        if verdict == .met {
            let results = RawJSON(members: all.map { ($0.node, $0.result ?? .null) })
            return TaskReport(attempt: attempt, lease: lease, state: .completed, result: results, participants: outcomes)
        }
        var error: String
        if case .timedOut(let seconds) = stop {
            error = Self.timeoutMessage(seconds)
        } else {
            let failed = self.outcomes.filter { $0.state != .completed && $0.error != Self.notNeeded }
            error = failed.map { "\($0.node): \($0.error ?? "failed")" }.joined(separator: "; ")
        }
        let rolledBack = outcomes.filter { $0.rollback?.state == .completed }.map(\.node)
        if !rolledBack.isEmpty { error += " (rolled back on \(rolledBack.joined(separator: ", ")))" }
        return TaskReport(attempt: attempt, lease: lease, state: .failed, error: error, participants: outcomes)
    }
}
