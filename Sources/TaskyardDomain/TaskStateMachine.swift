/// Everything that can happen to a task.
public enum TaskAction: String, Sendable, Hashable, CaseIterable {
    /// A client submits the task.
    case submit
    /// A client submits it with `"on_limit": "cancel_newest"` while its concurrency key already has its
    /// limit of live tasks: it is written cancelled, never queued.
    case refuseAtLimit
    /// Its initiator's agent takes it in a poll.
    case claim
    /// The agent reports that every participant succeeded.
    case complete
    /// The agent reports that a participant failed, on the last attempt of the task's budget.
    case fail
    /// A client asks to cancel it. A queued task ends at once; a received one is only flagged, and
    /// stays received until its agent acknowledges.
    case cancel
    /// The agent reports that it stopped the task after a cancel request.
    case acknowledgeCancel
    /// A client retries a failed or cancelled task.
    case retry
    /// The agent reports a failure while attempts remain: the task waits out a backoff, queued again.
    case failWithAttemptsLeft
    /// The agent reports a failure (attempts left or not) after a cancel was requested: the cancel takes
    /// effect, and the task is never claimed again (River's `should_cancel`).
    case failAfterCancel
    /// A claim whose answer never reached its agent (the poll's client was gone): queued again at once, its
    /// attempt given back, instead of waiting out a lease nobody holds.
    case releaseUndelivered
    /// Its lease ran out (agent or node lost) while attempts remain: queued again for another attempt.
    case expireLease
    /// Its lease ran out on the last attempt: failed for good.
    case expireLeaseOnLastAttempt
    /// Its lease ran out after a cancel was requested: the cancel takes effect.
    case expireLeaseAfterCancel
    /// Its initiator went offline: a queued task moves to another online participating node.
    case reassign
    /// A node it runs on went offline, and it said `"on_offline": "fail"`: a queued task fails at once.
    case failOffline
}

/// One allowed move: `from` nil means the task does not exist yet.
public struct TaskTransition: Sendable, Hashable, CustomStringConvertible {
    public let from: TaskState?
    public let action: TaskAction
    public let to: TaskState

    public var description: String { "\(from?.rawValue ?? "∅") --\(action.rawValue)--> \(to.rawValue)" }
}

/// The task state machine: every allowed transition, in one table. The store's SQL guards
/// (`WHERE state = …`) implement the same table; a test holds both to it.
public enum TaskStateMachine {
    public static let transitions: [TaskTransition] = [
        TaskTransition(from: nil, action: .submit, to: .queued),
        TaskTransition(from: nil, action: .refuseAtLimit, to: .cancelled),
        TaskTransition(from: .queued, action: .claim, to: .received),
        TaskTransition(from: .received, action: .complete, to: .completed),
        TaskTransition(from: .received, action: .fail, to: .failed),
        TaskTransition(from: .queued, action: .cancel, to: .cancelled),
        TaskTransition(from: .received, action: .cancel, to: .received),
        TaskTransition(from: .received, action: .acknowledgeCancel, to: .cancelled),
        TaskTransition(from: .received, action: .failWithAttemptsLeft, to: .queued),
        TaskTransition(from: .received, action: .failAfterCancel, to: .cancelled),
        TaskTransition(from: .received, action: .releaseUndelivered, to: .queued),
        TaskTransition(from: .received, action: .expireLease, to: .queued),
        TaskTransition(from: .received, action: .expireLeaseOnLastAttempt, to: .failed),
        TaskTransition(from: .received, action: .expireLeaseAfterCancel, to: .cancelled),
        TaskTransition(from: .queued, action: .reassign, to: .queued),
        TaskTransition(from: .queued, action: .failOffline, to: .failed),
        TaskTransition(from: .failed, action: .retry, to: .queued),
        TaskTransition(from: .cancelled, action: .retry, to: .queued),
    ]

    /// The state after `action`, or nil when the action is not allowed from `state`.
    public static func next(from state: TaskState?, on action: TaskAction) -> TaskState? {
        transitions.first { $0.from == state && $0.action == action }?.to
    }

    /// The states `action` may start from.
    public static func sources(of action: TaskAction) -> [TaskState?] {
        transitions.filter { $0.action == action }.map(\.from)
    }
}
