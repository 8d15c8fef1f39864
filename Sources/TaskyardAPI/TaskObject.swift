import Foundation
import TaskyardDomain

/// The task object of the HTTP contract, field for field.
public struct TaskObject: Codable, Sendable, Hashable {
    public var id: Int64
    public var clusterID: String
    public var type: String
    public var state: TaskState
    public var payload: RawJSON
    public var assignedNode: String
    public var participatingNodes: [String]
    public var parentID: Int64?
    public var attempt: Int
    public var maxAttempts: Int
    public var priority: Int
    public var runAfter: Date?
    /// How long an attempt may run before its agent stops it and reports it failed; nil: no limit.
    public var timeoutSeconds: Int?
    public var leaseExpiresAt: Date?
    public var orderingKey: String?
    public var idempotencyKey: String?
    public var opaqueID: String?
    /// The W3C `traceparent` the task was submitted with.
    public var traceparent: String?
    public var result: RawJSON?
    public var error: String?
    public var cancelRequested: Bool
    public var abortable: Bool
    public var `internal`: Bool
    public var progress: JSONValue?
    /// When the fan-out counts as done: `"all"`, `"any"`, `"quorum"` or `{"at_least": N}`.
    public var completeWhen: JSONValue
    public var concurrencyKey: String?
    public var concurrencyLimit: Int?
    /// The saturated or offline nodes a queued task waits on (gang admission); nil: none.
    public var waitingFor: [String]?
    public var scheduleID: String?
    /// The slot of its schedule it was submitted for.
    public var scheduleSlot: Date?
    /// `{"type", "node"}`: the task submitted when this one finishes; nil: none.
    public var onFinish: JSONValue?
    /// The task `on_finish` submitted when this one last finished.
    public var followUpID: Int64?
    /// One entry per participating node: its latest outcome, with the attempt it came from.
    public var participants: [ParticipantObject]
    public var createdAt: Date
    public var receivedAt: Date?
    public var finishedAt: Date?
    public var updatedAt: Date

    enum CodingKeys: String, CodingKey {
        case id, type, state, payload, attempt, priority, result, error, abortable, `internal`, progress, participants
        case completeWhen = "complete_when", concurrencyKey = "concurrency_key", concurrencyLimit = "concurrency_limit"
        case waitingFor = "waiting_for", scheduleID = "schedule_id", scheduleSlot = "schedule_slot", onFinish = "on_finish", followUpID = "follow_up_id"
        case clusterID = "cluster_id", assignedNode = "assigned_node", participatingNodes = "participating_nodes"
        case parentID = "parent_id", maxAttempts = "max_attempts", runAfter = "run_after", timeoutSeconds = "timeout_seconds"
        case leaseExpiresAt = "lease_expires_at", orderingKey = "ordering_key", idempotencyKey = "idempotency_key"
        case opaqueID = "opaque_id", traceparent, cancelRequested = "cancel_requested", createdAt = "created_at"
        case receivedAt = "received_at", finishedAt = "finished_at", updatedAt = "updated_at"
    }

    public init(_ task: TaskRecord) {
        id = task.id
        clusterID = task.clusterID
        type = task.type
        state = task.state
        payload = task.payload
        assignedNode = task.assignedNode
        participatingNodes = task.participatingNodes
        parentID = task.parentID
        attempt = task.attempt
        maxAttempts = task.maxAttempts
        priority = task.priority
        runAfter = task.runAfter
        timeoutSeconds = task.timeoutSeconds
        leaseExpiresAt = task.leaseExpiresAt
        orderingKey = task.orderingKey
        idempotencyKey = task.idempotencyKey
        opaqueID = task.opaqueID
        traceparent = task.traceparent
        result = task.result
        error = task.error
        cancelRequested = task.cancelRequested
        abortable = task.abortable
        `internal` = task.isInternal
        progress = task.progress
        completeWhen = task.completeWhen.json
        concurrencyKey = task.concurrency?.key
        concurrencyLimit = task.concurrency?.limit
        waitingFor = task.waitingFor
        scheduleID = task.schedule?.id
        scheduleSlot = task.schedule?.slot
        onFinish = task.onFinish?.json
        followUpID = task.followUpID
        participants = task.participantViews.map(ParticipantObject.init)
        createdAt = task.createdAt
        receivedAt = task.receivedAt
        finishedAt = task.finishedAt
        updatedAt = task.updatedAt
    }

    /// Writes every field, null included: clients rely on the keys being there.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(clusterID, forKey: .clusterID)
        try container.encode(type, forKey: .type)
        try container.encode(state, forKey: .state)
        try container.encode(payload, forKey: .payload)
        try container.encode(assignedNode, forKey: .assignedNode)
        try container.encode(participatingNodes, forKey: .participatingNodes)
        try container.encode(parentID, forKey: .parentID)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(maxAttempts, forKey: .maxAttempts)
        try container.encode(priority, forKey: .priority)
        try container.encode(runAfter, forKey: .runAfter)
        try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(leaseExpiresAt, forKey: .leaseExpiresAt)
        try container.encode(orderingKey, forKey: .orderingKey)
        try container.encode(idempotencyKey, forKey: .idempotencyKey)
        try container.encode(opaqueID, forKey: .opaqueID)
        try container.encode(traceparent, forKey: .traceparent)
        try container.encode(result, forKey: .result)
        try container.encode(error, forKey: .error)
        try container.encode(cancelRequested, forKey: .cancelRequested)
        try container.encode(abortable, forKey: .abortable)
        try container.encode(`internal`, forKey: .internal)
        try container.encode(progress, forKey: .progress)
        try container.encode(completeWhen, forKey: .completeWhen)
        try container.encode(concurrencyKey, forKey: .concurrencyKey)
        try container.encode(concurrencyLimit, forKey: .concurrencyLimit)
        try container.encode(waitingFor, forKey: .waitingFor)
        try container.encode(scheduleID, forKey: .scheduleID)
        try container.encode(scheduleSlot, forKey: .scheduleSlot)
        try container.encode(onFinish, forKey: .onFinish)
        try container.encode(followUpID, forKey: .followUpID)
        try container.encode(participants, forKey: .participants)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(receivedAt, forKey: .receivedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}

/// A participating node's place in a task: its latest outcome and the attempt it came from.
public struct ParticipantObject: Codable, Sendable, Hashable {
    public var node: String
    public var attempt: Int
    public var state: ParticipantState
    public var result: RawJSON?
    public var error: String?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// `{"state", "result"?, "error"?}` of the rollback that undid this success, else nil.
    public var rollback: JSONValue?
    /// This outcome settled the task under its completion policy.
    public var decided: Bool

    enum CodingKeys: String, CodingKey {
        case node, attempt, state, result, error, rollback, decided
        case startedAt = "started_at", finishedAt = "finished_at"
    }

    public init(_ view: ParticipantView) {
        node = view.node
        attempt = view.attempt
        state = view.state
        result = view.result
        error = view.error
        startedAt = view.startedAt
        finishedAt = view.finishedAt
        rollback = view.rollback?.json
        decided = view.decided
    }

    public init(_ record: ParticipantRecord) { self.init(ParticipantView(record)) }

    /// Writes every field, null included.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(node, forKey: .node)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(state, forKey: .state)
        try container.encode(result, forKey: .result)
        try container.encode(error, forKey: .error)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(rollback, forKey: .rollback)
        try container.encode(decided, forKey: .decided)
    }
}

/// `GET …/tasks/{id}/participants`: every attempt's outcomes, oldest attempt first.
public struct ParticipantList: Codable, Sendable {
    public var participants: [ParticipantObject]
    public init(participants: [ParticipantObject]) { self.participants = participants }
}

/// `GET …/tasks/{id}`: the task plus summaries of its children.
public struct TaskDetail: Codable, Sendable, Hashable {
    public var task: TaskObject
    public var children: [TaskSummary]

    public init(task: TaskObject, children: [TaskSummary]) {
        self.task = task
        self.children = children
    }

    enum CodingKeys: String, CodingKey { case children }

    public init(from decoder: any Decoder) throws {
        task = try TaskObject(from: decoder)
        children = try decoder.container(keyedBy: CodingKeys.self).decode([TaskSummary].self, forKey: .children)
    }

    public func encode(to encoder: any Encoder) throws {
        try task.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(children, forKey: .children)
    }
}

/// A child task (a sub-task a client submitted) in a parent's detail.
public struct TaskSummary: Codable, Sendable, Hashable {
    public var id: Int64
    public var type: String
    public var state: TaskState
    public var assignedNode: String
    public var attempt: Int
    public var result: RawJSON?
    public var error: String?
    public var receivedAt: Date?
    public var finishedAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, type, state, attempt, result, error
        case assignedNode = "assigned_node", receivedAt = "received_at", finishedAt = "finished_at"
    }

    public init(_ task: TaskRecord) {
        id = task.id
        type = task.type
        state = task.state
        assignedNode = task.assignedNode
        attempt = task.attempt
        result = task.result
        error = task.error
        receivedAt = task.receivedAt
        finishedAt = task.finishedAt
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(type, forKey: .type)
        try container.encode(state, forKey: .state)
        try container.encode(assignedNode, forKey: .assignedNode)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(result, forKey: .result)
        try container.encode(error, forKey: .error)
        try container.encode(receivedAt, forKey: .receivedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
    }
}

public struct TaskList: Codable, Sendable {
    public var tasks: [TaskObject]
    public var next: String?

    public init(tasks: [TaskObject], next: String?) {
        self.tasks = tasks
        self.next = next
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(tasks, forKey: .tasks)
        try container.encode(next, forKey: .next)
    }
}

public struct TaskBatch: Codable, Sendable {
    public var tasks: [TaskObject]
    public init(tasks: [TaskObject]) { self.tasks = tasks }
}

public struct EventObject: Codable, Sendable, Hashable {
    public var at: Date
    public var from: TaskState?
    public var to: TaskState
    public var node: String?
    public var attempt: Int
    public var detail: JSONValue?

    public init(_ event: TaskEvent) {
        at = event.at
        from = event.from
        to = event.to
        node = event.node
        attempt = event.attempt
        detail = event.detail
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(at, forKey: .at)
        try container.encode(from, forKey: .from)
        try container.encode(to, forKey: .to)
        try container.encode(node, forKey: .node)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(detail, forKey: .detail)
    }
}

/// The data of a `change` event of the change stream (`GET …/changes`): one task transition, its task id
/// beside the fields of `EventObject`. Its position is the event's SSE `id`.
public struct ChangeObject: Codable, Sendable, Hashable {
    public var taskID: Int64
    public var event: EventObject

    public init(_ change: TaskChange) {
        taskID = change.event.taskID
        event = EventObject(change.event)
    }

    private enum CodingKeys: String, CodingKey { case taskID = "task_id" }

    public init(from decoder: any Decoder) throws {
        taskID = try decoder.container(keyedBy: CodingKeys.self).decode(Int64.self, forKey: .taskID)
        event = try EventObject(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(taskID, forKey: .taskID)
        try event.encode(to: encoder)
    }
}

public struct EventList: Codable, Sendable {
    public var events: [EventObject]
    /// The cursor of the next page; nil on the last.
    public var next: String?
    public init(events: [EventObject], next: String? = nil) {
        self.events = events
        self.next = next
    }

    /// Writes `next` as null on the last page, as task lists do.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(events, forKey: .events)
        try container.encode(next, forKey: .next)
    }
}
