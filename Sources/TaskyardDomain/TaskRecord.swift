import Foundation

/// A task as stored: the API's task object.
public struct TaskRecord: Sendable, Hashable {
    public var id: Int64
    public var clusterID: String
    public var type: String
    public var state: TaskState
    public var payload: RawJSON
    /// The initiator: the node whose agent claims the task and fans it out.
    public var assignedNode: String
    public var participatingNodes: [String]
    public var parentID: Int64?
    /// Claims so far: 0 until the first claim.
    public var attempt: Int
    public var maxAttempts: Int
    /// Higher runs first.
    public var priority: Int
    public var runAfter: Date?
    public var timeoutSeconds: Int?
    public var leaseExpiresAt: Date?
    public var orderingKey: String?
    public var idempotencyKey: String?
    public var opaqueID: String?
    public var affinity: Affinity
    public var abortable: Bool
    public var isInternal: Bool
    public var result: RawJSON?
    public var error: String?
    public var progress: JSONValue?
    public var cancelRequestedAt: Date?
    public var cancelReason: String?
    public var createdAt: Date
    public var receivedAt: Date?
    public var finishedAt: Date?
    public var updatedAt: Date

    /// The latest recorded outcome of each participating node that has one (from any attempt).
    public var participants: [ParticipantRecord] = []
    /// The W3C `traceparent` it was submitted with.
    public var traceparent: String?
    /// When its fan-out counts as done.
    public var completeWhen: CompletionPolicy = .all
    /// The participants that run in the current (or next) attempt: those without a completed outcome, after
    /// a re-drive; nil: all of them.
    public var attemptNodes: [String]?
    /// The nodes this attempt runs.
    public var runningNodes: [String] { attemptNodes ?? participatingNodes }
    /// At most so many received tasks of its key at once.
    public var concurrency: ConcurrencyKey?
    /// While a participant is offline: wait for it, or fail at once.
    public var onOffline: OfflinePolicy = .wait
    /// The task submitted when it finishes, and the one submitted when it last finished.
    public var onFinish: FollowUp?
    public var followUpID: Int64?
    /// The schedule and slot it was submitted for, if a schedule submitted it.
    public var schedule: ScheduleSlot?
    /// The nodes a queued task waits on: saturated (no free slot) or offline. Read where a task is shown to a
    /// person (not on the hot path); nil there too when it waits on none.
    public var waitingFor: [String]?

    public var cancelRequested: Bool { cancelRequestedAt != nil }

    public init(id: Int64, clusterID: String, type: String, state: TaskState, payload: RawJSON,
                assignedNode: String, participatingNodes: [String], parentID: Int64?, attempt: Int,
                maxAttempts: Int, priority: Int, runAfter: Date?, timeoutSeconds: Int?, leaseExpiresAt: Date?,
                orderingKey: String?, idempotencyKey: String?, opaqueID: String?, affinity: Affinity,
                abortable: Bool, isInternal: Bool, result: RawJSON?, error: String?, progress: JSONValue?,
                cancelRequestedAt: Date?, cancelReason: String?, createdAt: Date, receivedAt: Date?,
                finishedAt: Date?, updatedAt: Date) {
        self.id = id
        self.clusterID = clusterID
        self.type = type
        self.state = state
        self.payload = payload
        self.assignedNode = assignedNode
        self.participatingNodes = participatingNodes
        self.parentID = parentID
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.priority = priority
        self.runAfter = runAfter
        self.timeoutSeconds = timeoutSeconds
        self.leaseExpiresAt = leaseExpiresAt
        self.orderingKey = orderingKey
        self.idempotencyKey = idempotencyKey
        self.opaqueID = opaqueID
        self.affinity = affinity
        self.abortable = abortable
        self.isInternal = isInternal
        self.result = result
        self.error = error
        self.progress = progress
        self.cancelRequestedAt = cancelRequestedAt
        self.cancelReason = cancelReason
        self.createdAt = createdAt
        self.receivedAt = receivedAt
        self.finishedAt = finishedAt
        self.updatedAt = updatedAt
    }
}

/// Whether a task may move to another participating node when its initiator is lost.
public enum Affinity: String, Sendable, Hashable, CaseIterable, Codable {
    case any, strict
}

/// How the initiator is chosen among the participating nodes.
public enum AssignPolicy: String, Sendable, Hashable, CaseIterable, Codable {
    /// The first participating node (Kadalu's behaviour).
    case first
    /// The online participant holding the fewest live tasks; ties go to the earlier one in the list.
    case leastLoaded = "least_loaded"
}

/// One entry of a task's history (a row of `task_events`).
public struct TaskEvent: Sendable, Hashable {
    public var id: Int64
    public var taskID: Int64
    public var from: TaskState?
    public var to: TaskState
    public var node: String?
    public var attempt: Int
    public var at: Date
    public var detail: JSONValue?

    public init(id: Int64, taskID: Int64, from: TaskState?, to: TaskState, node: String?, attempt: Int, at: Date,
                detail: JSONValue?) {
        self.id = id
        self.taskID = taskID
        self.from = from
        self.to = to
        self.node = node
        self.attempt = attempt
        self.at = at
        self.detail = detail
    }
}

public struct Cluster: Sendable, Hashable {
    public var id: String
    public var name: String
    public var createdAt: Date

    public init(id: String, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }
}

public enum NodeStatus: String, Sendable, Hashable, Codable {
    case online, offline
}

public struct Node: Sendable, Hashable {
    public var clusterID: String
    public var id: String
    public var endpoint: String
    public var status: NodeStatus
    public var labels: JSONValue
    public var capacity: Int
    public var registeredAt: Date
    public var lastSeenAt: Date
    /// Tasks this node holds in `received` now.
    public var heldTasks: Int
    /// Received tasks this node takes part in now, as initiator or participant: what `capacity` bounds.
    public var slotsInUse = 0

    /// A registration that names no capacity: as many tasks as an agent's participant endpoint runs handlers
    /// at once by default (`--max-handler-runs`), so that gang admission holds tasks back only on nodes an
    /// operator has given a smaller capacity.
    public static let defaultCapacity = 1024

    public init(clusterID: String, id: String, endpoint: String, status: NodeStatus, labels: JSONValue,
                capacity: Int, registeredAt: Date, lastSeenAt: Date, heldTasks: Int) {
        self.clusterID = clusterID
        self.id = id
        self.endpoint = endpoint
        self.status = status
        self.labels = labels
        self.capacity = capacity
        self.registeredAt = registeredAt
        self.lastSeenAt = lastSeenAt
        self.heldTasks = heldTasks
    }
}

/// One participating node's place in a task, as the task object shows it.
public struct ParticipantView: Sendable, Hashable {
    public var node: String
    public var attempt: Int
    public var state: ParticipantState
    public var result: RawJSON?
    public var error: String?
    public var startedAt: Date?
    public var finishedAt: Date?
    public var rollback: ParticipantRollback?
    public var decided: Bool

    public init(node: String, attempt: Int, state: ParticipantState, result: RawJSON? = nil, error: String? = nil,
                startedAt: Date? = nil, finishedAt: Date? = nil, rollback: ParticipantRollback? = nil, decided: Bool = false) {
        self.node = node
        self.attempt = attempt
        self.state = state
        self.result = result
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.rollback = rollback
        self.decided = decided
    }

    public init(_ record: ParticipantRecord) {
        let outcome = record.outcome
        self.init(node: outcome.node, attempt: record.attempt, state: ParticipantState(rawValue: outcome.state.rawValue)!,
                  result: outcome.result, error: outcome.error, startedAt: outcome.startedAt,
                  finishedAt: outcome.finishedAt, rollback: outcome.rollback, decided: outcome.decided)
    }
}

extension TaskRecord {
    /// One entry per participating node, in their order: while an attempt is out (`received`), a node
    /// not yet reported for it is `running`; otherwise its latest recorded outcome, with the attempt it came
    /// from, or `pending` when it has none.
    public var participantViews: [ParticipantView] {
        var latest: [String: ParticipantRecord] = [:]
        for record in participants where record.attempt >= latest[record.outcome.node]?.attempt ?? Int.min {
            latest[record.outcome.node] = record
        }
        return participatingNodes.map { node in
            // A participant this attempt does not run shows the outcome it carries forward.
            if let record = latest[node], state != .received || record.attempt >= attempt || !runningNodes.contains(node) {
                return ParticipantView(record)
            }
            if state == .received { return ParticipantView(node: node, attempt: attempt, state: .running, startedAt: receivedAt) }
            return ParticipantView(node: node, attempt: attempt, state: .pending)
        }
    }
}

