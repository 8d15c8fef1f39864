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
}

/// What one participating node did for the task in one attempt: a record of the attempt, not a task.
public struct ParticipantOutcome: Sendable, Hashable {
    public var node: String
    public var state: ReportedState
    public var result: RawJSON?
    public var error: String?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The rollback that undid this participant's success, when the attempt failed elsewhere.
    public var rollback: ParticipantRollback?
    /// This outcome settled the task under its completion policy (the initiator's `FanOutDecision` says).
    public var decided: Bool

    public init(node: String, state: ReportedState, result: RawJSON? = nil, error: String? = nil,
                startedAt: Date? = nil, finishedAt: Date? = nil, rollback: ParticipantRollback? = nil,
                decided: Bool = false) {
        self.node = node
        self.state = state
        self.result = result
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.rollback = rollback
        self.decided = decided
    }
}

/// How a participant's rollback went: `completed` with the rollback handler's result, or `failed` with why.
/// Its JSON (`{"state", "result"?, "error"?}`) is what a report carries.
public struct ParticipantRollback: Sendable, Hashable, Codable {
    public var state: ReportedState
    public var result: JSONValue?
    public var error: String?

    public init(state: ReportedState, result: JSONValue? = nil, error: String? = nil) {
        self.state = state
        self.result = result
        self.error = error
    }

    /// As stored in `task_participants.rollback` and shown on the task object.
    public var json: JSONValue {
        var object: [String: JSONValue] = ["state": .string(state.rawValue)]
        if let result { object["result"] = result }
        if let error { object["error"] = .string(error) }
        return .object(object)
    }

    public init?(json: JSONValue?) {
        guard case .string(let text)? = json?["state"], let state = ReportedState(rawValue: text) else { return nil }
        self.init(state: state, result: json?["result"],
                  error: { if case .string(let error)? = json?["error"] { return error } else { return nil } }())
    }
}

/// A participant's outcome as recorded, with the attempt it came from.
public struct ParticipantRecord: Sendable, Hashable {
    public var attempt: Int
    public var outcome: ParticipantOutcome

    public init(attempt: Int, outcome: ParticipantOutcome) {
        self.attempt = attempt
        self.outcome = outcome
    }
}

/// Where a participant stands in a task, as the task object shows it.
public enum ParticipantState: String, Sendable, Hashable, CaseIterable, Codable {
    /// Not run yet in the task's current attempt (the task is queued, or was never claimed).
    case pending
    /// The task's current attempt is out with its initiator, and this participant has not been reported.
    case running
    case completed, failed, cancelled
}

/// The body of `POST /api/v1/tasks/{cluster}/{node}/{task}/state`.
public struct TaskReport: Sendable, Hashable {
    public var attempt: Int
    /// The secret lease the claim returned: without it a report is stale, whatever its attempt.
    public var lease: String
    public var state: ReportedState
    public var result: RawJSON?
    public var error: String?
    public var participants: [ParticipantOutcome]

    public init(attempt: Int, lease: String, state: ReportedState, result: RawJSON? = nil, error: String? = nil,
                participants: [ParticipantOutcome] = []) {
        self.attempt = attempt
        self.lease = lease
        self.state = state
        self.result = result
        self.error = error
        self.participants = participants
    }

    /// Rules on the report alone, and, given the task's participating nodes and completion policy, that every
    /// participant is one and that a completed report's participants meet the policy (with `carriedSuccesses`
    /// completed outcomes carried forward from earlier attempts).
    public func validate(participatingNodes: [String]? = nil, completeWhen: CompletionPolicy = .all, carriedSuccesses: Int = 0,
                         limits: InputLimits = .default) throws(TaskyardError) {
        guard attempt >= 1, attempt <= Int(Int32.max) else {
            throw .invalid("attempt", "must be the attempt the task was claimed with (1 or more)")
        }
        try Self.checkLease(lease, field: "lease")
        if let result { try limits.check(result, field: "result", bytes: limits.resultBytes) }
        if let error { try limits.check(error, field: "error", length: limits.errorLength) }
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
            if let result = participant.result { try limits.check(result, field: field + ".result", bytes: limits.resultBytes) }
            if let error = participant.error { try limits.check(error, field: field + ".error", length: limits.errorLength) }
            if let rollback = participant.rollback {
                guard participant.state == .completed else {
                    throw .invalid(field + ".rollback", "only a participant that completed is rolled back")
                }
                if let result = rollback.result { try limits.check(result, field: field + ".rollback.result", bytes: limits.resultBytes) }
                if let error = rollback.error { try limits.check(error, field: field + ".rollback.error", length: limits.errorLength) }
            }
            if let startedAt = participant.startedAt { try DateRange.check(startedAt, field: field + ".started_at") }
            if let finishedAt = participant.finishedAt { try DateRange.check(finishedAt, field: field + ".finished_at") }
        }
        if state == .completed, let participatingNodes, !participants.isEmpty {
            let required = completeWhen.required(of: participatingNodes.count)
            let completed = participants.count { $0.state == .completed } + carriedSuccesses
            guard completed >= required else {
                throw .invalid("participants", "a task is completed only when \(required) of its \(participatingNodes.count) participants completed (complete_when \(completeWhen.name)), and \(completed) did; report it failed")
            }
        }
    }
}

extension TaskReport {
    /// A lease is what a claim returned (64 hex characters); anything else cannot match one, but must not
    /// reach the database either.
    public static func checkLease(_ lease: String, field: String) throws(TaskyardError) {
        guard (1...256).contains(lease.unicodeScalars.count) else { throw .invalid(field, "must be the lease the claim returned") }
        try InputLimits.checkNoNUL(lease, field: field)
    }
}

/// A task an agent says it still holds, with its attempt and progress: an item of a heartbeat, as the agent
/// sends it and the store renews it.
public struct HeldTask: Sendable, Hashable, Codable {
    public var id: Int64
    public var attempt: Int
    public var lease: String
    public var progress: TaskProgress?

    public init(id: Int64, attempt: Int, lease: String, progress: TaskProgress? = nil) {
        self.id = id
        self.attempt = attempt
        self.lease = lease
        self.progress = progress
    }
}

/// How far a task (or one participant's handler) is: `completed` of `total` `units`.
public struct TaskProgress: Sendable, Hashable, Codable {
    public var completed: Double
    public var total: Double?
    public var units: String?

    public init(completed: Double, total: Double? = nil, units: String? = nil) {
        self.completed = completed
        self.total = total
        self.units = units
    }

    /// Whether it can be stored: numbers finite and not negative, units at most 64 characters. Progress comes
    /// from participants through the agent; one that makes no sense is dropped, not its task's lease.
    public var isSensible: Bool {
        completed >= 0 && completed.isFinite && (total ?? 0) >= 0 && (total ?? 0).isFinite
            && (units?.unicodeScalars.count ?? 0) <= 64
    }

    /// As the task object's `progress` shows it.
    public var json: JSONValue {
        var object: [String: JSONValue] = ["completed": .double(completed)]
        if let total { object["total"] = .double(total) }
        if let units { object["units"] = .string(units) }
        return .object(object)
    }
}

/// What a heartbeat tells the agent back; the API's heartbeat answer too.
public struct LeaseRenewal: Sendable, Hashable, Codable {
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
    /// Nothing was claimed though a task is due: its slots are taken (gang admission, a concurrency key),
    /// or another claim holds it. Slots come free without a notification: look again soon.
    public var waiting: Bool

    public init(tasks: [ClaimedTask], cancel: [Int64], waiting: Bool = false) {
        self.tasks = tasks
        self.cancel = cancel
        self.waiting = waiting
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

/// Text from handlers and participants on its way into a task: control characters (NUL included) become
/// spaces, except line breaks and tabs, and it is cut to `maximumBytes` of UTF-8 on a character boundary.
public func cleanedReportText(_ text: String, maximumBytes: Int) -> String {
    var scalars = String.UnicodeScalarView()
    var bytes = 0
    for scalar in text.unicodeScalars {
        let kept: Unicode.Scalar = (scalar.value < 32 && scalar != "\n" && scalar != "\t") || scalar.value == 127 ? " " : scalar
        bytes += String(kept).utf8.count
        if bytes > maximumBytes - 3 {
            scalars.append("…")
            break
        }
        scalars.append(kept)
    }
    return String(scalars)
}

/// `text` with every control character but newline and tab (C0, DEL, C1: what terminals act on) replaced
/// by U+FFFD, so that it can be shown anywhere as it is.
public func withoutControlCharacters(_ text: String) -> String {
    func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\n" && scalar != "\t") || (0x7F...0x9F).contains(scalar.value)
    }
    guard text.unicodeScalars.contains(where: isControl) else { return text }
    return String(String.UnicodeScalarView(text.unicodeScalars.map { isControl($0) ? "\u{FFFD}" : $0 }))
}

extension TaskReport {
    /// The same report with its error texts (the task's, each participant's, each rollback's) free of
    /// control characters.
    public func withoutControlCharacters() -> TaskReport {
        var report = self
        report.error = error.map(TaskyardDomain.withoutControlCharacters)
        for index in report.participants.indices {
            report.participants[index].error = report.participants[index].error.map(TaskyardDomain.withoutControlCharacters)
            if var rollback = report.participants[index].rollback {
                rollback.error = rollback.error.map(TaskyardDomain.withoutControlCharacters)
                report.participants[index].rollback = rollback
            }
        }
        return report
    }

    /// The report as an agent sends it: error texts cleaned and cut to fit `limits`, and a completed task
    /// whose results the server could not store reported failed, saying why, rather than refused and lost.
    public func fitted(to limits: InputLimits = .default) -> TaskReport {
        var report = self
        let errorBytes = min(limits.errorLength, 4096)
        report.error = error.map { cleanedReportText($0, maximumBytes: errorBytes) }
        var unstorable: [String] = []
        for index in report.participants.indices {
            var participant = report.participants[index]
            participant.error = participant.error.map { cleanedReportText($0, maximumBytes: errorBytes) }
            if var rollback = participant.rollback {
                rollback.error = rollback.error.map { cleanedReportText($0, maximumBytes: errorBytes) }
                if let result = rollback.result, (try? limits.check(result, field: "result", bytes: limits.resultBytes)) == nil {
                    rollback.result = nil
                }
                participant.rollback = rollback
            }
            if let result = participant.result {
                do {
                    try limits.check(result, field: "result", bytes: limits.resultBytes)
                } catch {
                    participant.result = nil
                    participant.state = participant.state == .completed ? .failed : participant.state
                    participant.error = "its result cannot be stored: \(error.message)"
                    unstorable.append(participant.node)
                }
            }
            report.participants[index] = participant
        }
        if let result = report.result, (try? limits.check(result, field: "result", bytes: limits.resultBytes)) == nil {
            report.result = nil
            if unstorable.isEmpty { unstorable.append("the task") }
        }
        if !unstorable.isEmpty, report.state == .completed {
            report.state = .failed
            report.result = nil
            report.error = "results cannot be stored (\(unstorable.joined(separator: ", "))): larger or deeper than the server takes, or holding a NUL"
        }
        return report
    }
}
