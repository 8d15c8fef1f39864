import Foundation
import TaskyardDomain

/// `POST …/webhooks`: where to deliver which transitions.
public struct WebhookRequest: Codable, Sendable {
    public var url: String
    public var events: [String]
    public var types: [String]?

    public init(url: String, events: [String], types: [String]? = nil) {
        self.url = url
        self.events = events
        self.types = types
    }

    public func definition() throws -> WebhookDefinition {
        try WebhookDefinition(url: url, events: events, types: types)
    }
}

/// A subscription as the API shows it; `secret` only in the answer to its creation.
public struct WebhookObject: Codable, Sendable {
    public var id: Int64
    public var clusterID: String
    public var url: String
    public var events: [String]
    public var types: [String]?
    public var createdAt: Date
    public var secret: String?

    enum CodingKeys: String, CodingKey {
        case id, url, events, types, secret
        case clusterID = "cluster_id", createdAt = "created_at"
    }

    public init(_ webhook: Webhook, secret: String? = nil) {
        id = webhook.id
        clusterID = webhook.clusterID
        url = webhook.url.description
        events = webhook.events
        types = webhook.types
        createdAt = webhook.createdAt
        self.secret = secret
    }

    /// Every field, `types` null included; `secret` only when there is one to show.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(clusterID, forKey: .clusterID)
        try container.encode(url, forKey: .url)
        try container.encode(events, forKey: .events)
        try container.encode(types, forKey: .types)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encodeIfPresent(secret, forKey: .secret)
    }
}

public struct WebhookList: Codable, Sendable {
    public var webhooks: [WebhookObject]
    public init(webhooks: [WebhookObject]) { self.webhooks = webhooks }
}

/// One delivery of the log (`GET …/webhooks/{id}/deliveries`).
public struct DeliveryObject: Codable, Sendable {
    public var id: Int64
    public var webhookID: Int64
    public var event: String
    /// The change's position in the change feed (its `id` there).
    public var eventID: String
    public var taskID: Int64
    public var status: WebhookDelivery.State
    public var attempts: Int
    public var lastStatusCode: Int?
    public var lastError: String?
    public var lastAttemptAt: Date?
    public var nextAttemptAt: Date?
    public var giveUpAt: Date
    public var deliveredAt: Date?
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, event, status, attempts
        case webhookID = "webhook_id", eventID = "event_id", taskID = "task_id", lastStatusCode = "last_status_code"
        case lastError = "last_error", lastAttemptAt = "last_attempt_at", nextAttemptAt = "next_attempt_at"
        case giveUpAt = "give_up_at", deliveredAt = "delivered_at", createdAt = "created_at"
    }

    public init(_ delivery: WebhookDelivery) {
        id = delivery.id
        webhookID = delivery.webhookID
        event = delivery.event
        eventID = delivery.eventCursor.description
        taskID = delivery.taskID
        status = delivery.state
        attempts = delivery.attempts
        lastStatusCode = delivery.lastStatus
        lastError = delivery.lastError
        lastAttemptAt = delivery.lastAttemptAt
        nextAttemptAt = delivery.nextAttemptAt
        giveUpAt = delivery.giveUpAt
        deliveredAt = delivery.deliveredAt
        createdAt = delivery.createdAt
    }

    /// Every field, null included.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(webhookID, forKey: .webhookID)
        try container.encode(event, forKey: .event)
        try container.encode(eventID, forKey: .eventID)
        try container.encode(taskID, forKey: .taskID)
        try container.encode(status, forKey: .status)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(lastStatusCode, forKey: .lastStatusCode)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(lastAttemptAt, forKey: .lastAttemptAt)
        try container.encode(nextAttemptAt, forKey: .nextAttemptAt)
        try container.encode(giveUpAt, forKey: .giveUpAt)
        try container.encode(deliveredAt, forKey: .deliveredAt)
        try container.encode(createdAt, forKey: .createdAt)
    }
}

extension WebhookDelivery.State: Codable {}

public struct DeliveryList: Codable, Sendable {
    public var deliveries: [DeliveryObject]
    /// The `before` of the next (older) page; nil on the last.
    public var next: Int64?
    public init(deliveries: [DeliveryObject], next: Int64?) {
        self.deliveries = deliveries
        self.next = next
    }

    enum CodingKeys: String, CodingKey { case deliveries, next }

    /// `next` null on the last page.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(deliveries, forKey: .deliveries)
        try container.encode(next, forKey: .next)
    }
}

/// The body of a delivery, in the Standard Webhooks specification's recommended shape: `type`, `timestamp`
/// (of the transition) and `data` — the change as the change stream carries it, its feed position, and the
/// task as it was when the delivery was made.
public struct WebhookMessage: Codable, Sendable {
    public struct Data: Codable, Sendable {
        public var clusterID: String
        public var eventID: String
        public var change: ChangeObject
        public var task: TaskObject?

        enum CodingKeys: String, CodingKey {
            case task
            case clusterID = "cluster_id", eventID = "event_id"
        }

        public init(clusterID: String, change: TaskChange, task: TaskObject?) {
            self.clusterID = clusterID
            eventID = change.cursor.description
            self.change = ChangeObject(change)
            self.task = task
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            clusterID = try container.decode(String.self, forKey: .clusterID)
            eventID = try container.decode(String.self, forKey: .eventID)
            task = try container.decodeIfPresent(TaskObject.self, forKey: .task)
            change = try ChangeObject(from: decoder)
        }

        /// The change's fields (`task_id`, `from`, `to`, `at`, …) beside `cluster_id`, `event_id` and `task`.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(clusterID, forKey: .clusterID)
            try container.encode(eventID, forKey: .eventID)
            try change.encode(to: encoder)
            try container.encode(task, forKey: .task)
        }
    }

    public var type: String
    public var timestamp: Date
    public var data: Data

    public init(type: String, timestamp: Date, data: Data) {
        self.type = type
        self.timestamp = timestamp
        self.data = data
    }
}
