import Foundation
import TaskyardDomain

/// `GET /api/v1/tasks/{cluster_id}/{node_id}`: the tasks claimed by this poll, and the held tasks to stop.
public struct PollResponse: Codable, Sendable {
    public var tasks: [ClaimedTaskObject]
    public var cancel: [Int64]
    public init(tasks: [ClaimedTaskObject], cancel: [Int64]) {
        self.tasks = tasks
        self.cancel = cancel
    }
}

/// `POST /api/v1/tasks/{cluster_id}/{node_id}/heartbeat`
public struct HeartbeatRequest: Codable, Sendable {
    /// The held tasks, as the store renews them (`HeldTask` is the Domain's: one type, not a mirror).
    public var tasks: [HeldTask]
    public init(tasks: [HeldTask]) { self.tasks = tasks }
}

/// `POST …/heartbeat`'s answer: the store's renewal as it is (`{"cancel", "lost"}`).
public typealias HeartbeatResponse = LeaseRenewal

/// `POST /api/v1/tasks/{cluster_id}/{node_id}/{task_id}/state`
public struct StateReportRequest: Codable, Sendable {
    public struct Participant: Codable, Sendable, Hashable {
        public var node: String
        public var state: ReportedState
        public var result: RawJSON?
        public var error: String?
        public var startedAt: Date?
        public var finishedAt: Date?
        /// How the rollback of this success went, where one ran.
        public var rollback: ParticipantRollback?
        /// This outcome settled the task under its completion policy.
        public var decided: Bool?

        enum CodingKeys: String, CodingKey {
            case node, state, result, error, rollback, decided, startedAt = "started_at", finishedAt = "finished_at"
        }

        public init(_ outcome: ParticipantOutcome) {
            node = outcome.node
            state = outcome.state
            result = outcome.result
            error = outcome.error
            startedAt = outcome.startedAt
            finishedAt = outcome.finishedAt
            rollback = outcome.rollback
            decided = outcome.decided ? true : nil
        }

        public var outcome: ParticipantOutcome {
            ParticipantOutcome(node: node, state: state, result: result, error: error, startedAt: startedAt,
                               finishedAt: finishedAt,
                               rollback: rollback,
                               decided: decided ?? false)
        }
    }

    public var attempt: Int
    public var lease: String
    public var state: ReportedState
    public var result: RawJSON?
    public var error: String?
    public var participants: [Participant]?
    /// The agent's span for this report (W3C `traceparent`), when it traces: the server's report span is its
    /// child.
    public var traceparent: String?

    public init(_ report: TaskReport, traceparent: String? = nil) {
        self.traceparent = traceparent
        attempt = report.attempt
        lease = report.lease
        state = report.state
        result = report.result
        error = report.error
        participants = report.participants.map(Participant.init)
    }

    public var report: TaskReport {
        TaskReport(attempt: attempt, lease: lease, state: state, result: result, error: error,
                   participants: (participants ?? []).map(\.outcome))
    }
}

/// `POST /api/v1/tasks/{cluster_id}/{node_id}/states`: many reports in one request, each the body of
/// the single-task route plus its `task_id`.
public struct StateReportBatchRequest: Codable, Sendable {
    public struct Item: Codable, Sendable {
        public var taskID: Int64
        public var report: StateReportRequest

        enum CodingKeys: String, CodingKey { case taskID = "task_id" }

        public init(taskID: Int64, report: StateReportRequest) {
            self.taskID = taskID
            self.report = report
        }

        public init(from decoder: any Decoder) throws {
            taskID = try decoder.container(keyedBy: CodingKeys.self).decode(Int64.self, forKey: .taskID)
            report = try StateReportRequest(from: decoder)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(taskID, forKey: .taskID)
            try report.encode(to: encoder)
        }
    }

    public var reports: [Item]
    public init(reports: [Item]) { self.reports = reports }
}

/// The answer to a batch of reports: one result per report, in order. `status` is what the single-task
/// route would have answered: 200 with the task's new `state`, or 404/409/422 with the `error`.
public struct StateReportBatchResponse: Codable, Sendable {
    public struct Result: Codable, Sendable, Equatable {
        public var taskID: Int64
        public var status: Int
        public var state: TaskState?
        public var error: ErrorBody.Detail?

        enum CodingKeys: String, CodingKey { case taskID = "task_id", status, state, error }

        public init(taskID: Int64, status: Int, state: TaskState? = nil, error: ErrorBody.Detail? = nil) {
            self.taskID = taskID
            self.status = status
            self.state = state
            self.error = error
        }
    }

    public var results: [Result]
    public init(results: [Result]) { self.results = results }
}

/// `POST {node endpoint}/api/v1/tasks/{type}`: the work one participant does for a task.
public struct ParticipantRequest: Codable, Sendable, Hashable {
    public var taskID: Int64
    public var clusterID: String
    public var attempt: Int
    public var initiator: String
    public var payload: RawJSON
    /// The task's W3C trace context: sent as the `traceparent` header of a single call (not in its body),
    /// as a field of a batched one.
    public var traceparent: String? = nil

    enum CodingKeys: String, CodingKey {
        case attempt, initiator, payload, taskID = "task_id", clusterID = "cluster_id"
    }

    public init(taskID: Int64, clusterID: String, attempt: Int, initiator: String, payload: RawJSON,
                traceparent: String? = nil) {
        self.taskID = taskID
        self.clusterID = clusterID
        self.attempt = attempt
        self.initiator = initiator
        self.payload = payload
        self.traceparent = traceparent
    }
}

/// A participant's answer on success.
public struct ParticipantResult: Codable, Sendable, Hashable {
    public var result: RawJSON?
    public init(result: RawJSON?) { self.result = result }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(result, forKey: .result)
    }
}

/// `POST {node endpoint}/api/v1/participant-calls`: many participant calls to one node in one request,
/// each with its own grant. The initiator gathers the calls it has for a node while its previous batch to
/// that node is on its way.
public struct ParticipantBatchRequest: Codable, Sendable, Hashable {
    public var calls: [ParticipantCall]
    public init(calls: [ParticipantCall]) { self.calls = calls }
}

/// One call of a batch: what `POST …/tasks/{type}` (or `…/{type}/rollback`) takes, with the task's
/// type and grant in the body.
public struct ParticipantCall: Codable, Sendable, Hashable {
    public var type: String
    /// The type's rollback rather than its handler.
    public var rollback: Bool?
    public var grant: String
    public var taskID: Int64
    public var clusterID: String
    public var attempt: Int
    public var initiator: String
    public var payload: RawJSON
    public var traceparent: String?

    enum CodingKeys: String, CodingKey {
        case type, rollback, grant, attempt, initiator, payload, traceparent, taskID = "task_id", clusterID = "cluster_id"
    }

    public init(type: String, rollback: Bool, grant: String, request: ParticipantRequest) {
        self.type = type
        self.rollback = rollback ? true : nil
        self.grant = grant
        taskID = request.taskID
        clusterID = request.clusterID
        attempt = request.attempt
        initiator = request.initiator
        payload = request.payload
        traceparent = request.traceparent
    }

    public var request: ParticipantRequest {
        ParticipantRequest(taskID: taskID, clusterID: clusterID, attempt: attempt, initiator: initiator, payload: payload,
                           traceparent: traceparent)
    }
}

/// One line of a batch's answer (`application/x-ndjson`), sent the moment its call ends, so a slow
/// handler holds up no other call of its batch: `index` is the call's position in the batch, `status`
/// what the single route would answer, with its `result` (2xx) or its `error`.
public struct ParticipantBatchLine: Codable, Sendable, Equatable {
    public var index: Int
    public var status: Int
    public var result: RawJSON?
    public var error: ErrorBody.Detail?

    public init(index: Int, status: Int, result: RawJSON? = nil, error: ErrorBody.Detail? = nil) {
        self.index = index
        self.status = status
        self.result = result
        self.error = error
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(index, forKey: .index)
        try container.encode(status, forKey: .status)
        // A success always carries `result` (null included), as the single route's body does.
        if (200..<300).contains(status) { try container.encode(result, forKey: .result) }
        try container.encodeIfPresent(error, forKey: .error)
    }
}
