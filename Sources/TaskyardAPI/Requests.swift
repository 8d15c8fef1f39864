import Foundation
import TaskyardDomain

/// `POST /api/v1/clusters`
public struct CreateClusterRequest: Codable, Sendable {
    public var id: String
    public var name: String?
    public init(id: String, name: String? = nil) {
        self.id = id
        self.name = name
    }
}

public struct ClusterObject: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var createdAt: Date

    enum CodingKeys: String, CodingKey { case id, name, createdAt = "created_at" }

    public init(_ cluster: Cluster) {
        id = cluster.id
        name = cluster.name
        createdAt = cluster.createdAt
    }
}

public struct ClusterList: Codable, Sendable {
    public var clusters: [ClusterObject]
    public init(clusters: [ClusterObject]) { self.clusters = clusters }
}

/// `PUT /api/v1/clusters/{cluster_id}/nodes/{node_id}`
public struct RegisterNodeRequest: Codable, Sendable {
    public var endpoint: String
    public var labels: JSONValue?
    public var capacity: Int?
    public init(endpoint: String, labels: JSONValue? = nil, capacity: Int? = nil) {
        self.endpoint = endpoint
        self.labels = labels
        self.capacity = capacity
    }
}

public struct NodeObject: Codable, Sendable, Hashable {
    public var id: String
    public var clusterID: String
    public var endpoint: String
    public var status: NodeStatus
    public var lastSeenAt: Date
    public var capacity: Int
    public var heldTasks: Int
    /// Tasks the node takes part in now (as initiator or participant), against its `capacity`.
    public var inUse: Int
    public var labels: JSONValue

    enum CodingKeys: String, CodingKey {
        case id, endpoint, status, capacity, labels
        case clusterID = "cluster_id", lastSeenAt = "last_seen_at", heldTasks = "held_tasks", inUse = "in_use"
    }

    public init(_ node: Node) {
        id = node.id
        clusterID = node.clusterID
        endpoint = node.endpoint
        status = node.status
        lastSeenAt = node.lastSeenAt
        capacity = node.capacity
        heldTasks = node.heldTasks
        inUse = node.slotsInUse
        labels = node.labels
    }
}

public struct NodeList: Codable, Sendable {
    public var nodes: [NodeObject]
    public init(nodes: [NodeObject]) { self.nodes = nodes }
}

/// `POST /api/v1/clusters/{cluster_id}/tasks`, and each item of a batch.
public struct SubmitTaskRequest: Codable, Sendable, Hashable {
    public var type: String
    public var participatingNodes: [String]
    public var payload: RawJSON?
    public var priority: Int?
    public var runAfter: Date?
    public var maxAttempts: Int?
    public var timeoutSeconds: Int?
    public var orderingKey: String?
    public var assign: AssignPolicy?
    public var affinity: Affinity?
    public var parentID: Int64?
    public var abortable: Bool?
    public var `internal`: Bool?
    /// `"all"`, `"any"`, `"quorum"` or `{"at_least": N}`; checked when the submission is made.
    public var completeWhen: JSONValue?
    public var concurrencyKey: String?
    /// Default 1 with a `concurrency_key`; refused without one.
    public var concurrencyLimit: Int?
    public var onLimit: LimitStrategy?
    public var onOffline: OfflinePolicy?
    /// `{"type", "node"}`: a task submitted when this one finishes; checked when the submission is made.
    public var onFinish: JSONValue?
    /// A batch item's idempotency key (a single submit takes the `Idempotency-Key` header instead).
    public var idempotencyKey: String?

    enum CodingKeys: String, CodingKey {
        case type, payload, priority, assign, affinity, abortable, `internal`, completeWhen = "complete_when"
        case participatingNodes = "participating_nodes", runAfter = "run_after", maxAttempts = "max_attempts"
        case timeoutSeconds = "timeout_seconds", orderingKey = "ordering_key", parentID = "parent_id"
        case idempotencyKey = "idempotency_key", concurrencyKey = "concurrency_key", concurrencyLimit = "concurrency_limit"
        case onLimit = "on_limit", onOffline = "on_offline", onFinish = "on_finish"
    }

    public init(type: String, participatingNodes: [String], payload: RawJSON? = nil, priority: Int? = nil,
                runAfter: Date? = nil, maxAttempts: Int? = nil, timeoutSeconds: Int? = nil, orderingKey: String? = nil,
                assign: AssignPolicy? = nil, affinity: Affinity? = nil, parentID: Int64? = nil, abortable: Bool? = nil,
                internal: Bool? = nil, completeWhen: JSONValue? = nil, concurrencyKey: String? = nil,
                concurrencyLimit: Int? = nil, onLimit: LimitStrategy? = nil, onOffline: OfflinePolicy? = nil,
                onFinish: JSONValue? = nil, idempotencyKey: String? = nil) {
        self.type = type
        self.participatingNodes = participatingNodes
        self.payload = payload
        self.priority = priority
        self.runAfter = runAfter
        self.maxAttempts = maxAttempts
        self.timeoutSeconds = timeoutSeconds
        self.orderingKey = orderingKey
        self.assign = assign
        self.affinity = affinity
        self.parentID = parentID
        self.abortable = abortable
        self.internal = `internal`
        self.completeWhen = completeWhen
        self.concurrencyKey = concurrencyKey
        self.concurrencyLimit = concurrencyLimit
        self.onLimit = onLimit
        self.onOffline = onOffline
        self.onFinish = onFinish
        self.idempotencyKey = idempotencyKey
    }

    /// The submission this body asks for, with what its request's headers add. `fieldPrefix`: where the
    /// body is in its request (`tasks[3].` in a batch), for the error of a policy that is no policy.
    public func submission(idempotencyKey: String?, opaqueID: String?, traceparent: String? = nil,
                           fieldPrefix: String = "") throws(TaskyardError) -> TaskSubmission {
        TaskSubmission(type: type, participatingNodes: participatingNodes, payload: payload ?? .emptyObject,
                       priority: priority ?? 0, runAfter: runAfter, maxAttempts: maxAttempts,
                       timeoutSeconds: timeoutSeconds, orderingKey: orderingKey, assign: assign ?? .first,
                       affinity: affinity ?? .any, parentID: parentID, abortable: abortable ?? true,
                       isInternal: `internal` ?? false,
                       completeWhen: try completeWhen.map { value throws(TaskyardError) in
                           try CompletionPolicy(json: value, field: fieldPrefix + "complete_when")
                       } ?? .all,
                       concurrency: try ConcurrencyKey(key: concurrencyKey, limit: concurrencyLimit, onLimit: onLimit,
                                                       fieldPrefix: fieldPrefix),
                       onOffline: onOffline ?? .wait,
                       onFinish: try onFinish.map { value throws(TaskyardError) in
                           try FollowUp(json: value, field: fieldPrefix + "on_finish")
                       },
                       idempotencyKey: idempotencyKey, opaqueID: opaqueID, traceparent: traceparent)
    }
}

/// `POST /api/v1/clusters/{cluster_id}/tasks/batch`
public struct SubmitBatchRequest: Codable, Sendable {
    public var tasks: [SubmitTaskRequest]
    public init(tasks: [SubmitTaskRequest]) { self.tasks = tasks }
}

/// `POST …/tasks/{task_id}/retry`: which participants the next attempt runs. `failed` (the default) or `all`;
/// this version runs every participant either way (re-drive is an open issue), and refuses other values.
public struct RetryRequest: Codable, Sendable {
    public var participants: String?
    public init(participants: String? = nil) { self.participants = participants }

    public static let choices = ["failed", "all"]
}

/// `POST …/tasks/{task_id}/cancel`
public struct CancelRequest: Codable, Sendable {
    public var reason: String?
    public init(reason: String? = nil) { self.reason = reason }
}
