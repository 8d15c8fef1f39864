import Foundation

/// How a received task ended, as its agent reports it.
public enum ReportedState: String, Sendable, Hashable, CaseIterable, Codable {
    case completed, failed, cancelled

    public var taskState: TaskState { TaskState(rawValue: rawValue)! }

    /// The transition this report makes on the task.
    public var action: TaskAction {
        switch self {
        case .completed: .complete
        case .failed: .fail
        case .cancelled: .acknowledgeCancel
        }
    }

    /// The transition that records a participant with this outcome as a child task.
    public var participantAction: TaskAction {
        switch self {
        case .completed: .recordParticipantCompleted
        case .failed: .recordParticipantFailed
        case .cancelled: .recordParticipantCancelled
        }
    }
}

/// What one participating node did for the task.
public struct ParticipantOutcome: Sendable, Hashable {
    public var node: String
    public var state: ReportedState
    public var result: JSONValue?
    public var error: String?
    public var startedAt: Date?
    public var finishedAt: Date?

    public init(node: String, state: ReportedState, result: JSONValue? = nil, error: String? = nil,
                startedAt: Date? = nil, finishedAt: Date? = nil) {
        self.node = node
        self.state = state
        self.result = result
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// The body of `POST /api/v1/tasks/{cluster}/{node}/{task}/state`.
public struct TaskReport: Sendable, Hashable {
    public var attempt: Int
    /// The secret lease the claim returned: without it a report is stale, whatever its attempt.
    public var lease: String
    public var state: ReportedState
    public var result: JSONValue?
    public var error: String?
    public var participants: [ParticipantOutcome]

    public init(attempt: Int, lease: String, state: ReportedState, result: JSONValue? = nil, error: String? = nil,
                participants: [ParticipantOutcome] = []) {
        self.attempt = attempt
        self.lease = lease
        self.state = state
        self.result = result
        self.error = error
        self.participants = participants
    }

    /// Rules on the report alone, and, given the task's participating nodes, that every participant is one.
    public func validate(participatingNodes: [String]? = nil) throws(TaskyardError) {
        guard attempt >= 1 else { throw .invalid("attempt", "must be the attempt the task was claimed with (1 or more)") }
        var seen = Set<String>()
        for (index, participant) in participants.enumerated() {
            let field = "participants[\(index)]"
            try Identifier.validate(participant.node, field: field + ".node")
            if let participatingNodes, !participatingNodes.contains(participant.node) {
                throw .invalid(field + ".node", "\(participant.node) is not a participating node of this task")
            }
            guard seen.insert(participant.node).inserted else {
                throw .invalid(field + ".node", "node \(participant.node) is reported twice")
            }
            if state == .completed, participant.state != .completed {
                throw .invalid(field + ".state",
                               "a task is completed only when every participant completed; report it failed")
            }
        }
    }
}

/// A task an agent says it still holds, with its attempt and progress (a heartbeat).
public struct HeldTask: Sendable, Hashable {
    public var id: Int64
    public var attempt: Int
    public var lease: String
    public var progress: JSONValue?

    public init(id: Int64, attempt: Int, lease: String, progress: JSONValue? = nil) {
        self.id = id
        self.attempt = attempt
        self.lease = lease
        self.progress = progress
    }
}

/// What a heartbeat tells the agent back.
public struct LeaseRenewal: Sendable, Hashable {
    /// Held tasks whose cancel was requested.
    public var cancel: [Int64]
    /// Tasks the node no longer holds at that attempt.
    public var lost: [Int64]

    public init(cancel: [Int64], lost: [Int64]) {
        self.cancel = cancel
        self.lost = lost
    }
}

/// What a poll gives the agent: the tasks it claimed, and the held tasks whose cancel was requested.
public struct PollOutcome: Sendable, Hashable {
    public var tasks: [ClaimedTask]
    public var cancel: [Int64]

    public init(tasks: [ClaimedTask], cancel: [Int64]) {
        self.tasks = tasks
        self.cancel = cancel
    }
}

/// A task just claimed, with the claim's secret lease: the only place a lease is ever seen.
@dynamicMemberLookup
public struct ClaimedTask: Sendable, Hashable {
    public var task: TaskRecord
    public var lease: String

    public init(task: TaskRecord, lease: String) {
        self.task = task
        self.lease = lease
    }

    public subscript<T>(dynamicMember keyPath: KeyPath<TaskRecord, T>) -> T { task[keyPath: keyPath] }
}
