import Foundation
import Postgres
import TaskyardDomain

/// Webhook subscriptions and their deliveries. The outbox is `task_events`: each subscription keeps a
/// place in the change feed, and the leader turns the changes after it into deliveries (`record`) and
/// sends them (`take`, `finishAttempt`). Secrets arrive and leave sealed: the store never holds one that
/// signs.
public struct WebhookStore: Sendable, TaskStorePart {
    let context: StoreContext

    /// A subscription as the leader works with it.
    public struct Subscription: Sendable {
        public var webhook: Webhook
        public var sealedSecretHex: String
        /// Every matching change before it has its delivery.
        public var position: ChangeCursor
    }

    /// A delivery to write: the change, its event name and the body every attempt sends.
    public struct NewDelivery: Sendable {
        public var change: TaskChange
        public var event: String
        public var body: String

        public init(change: TaskChange, event: String, body: String) {
            self.change = change
            self.event = event
            self.body = body
        }
    }

    /// One attempt to make: what to send where, signed with which secret.
    public struct Attempt: Sendable {
        public var deliveryID: Int64
        public var clusterID: String
        public var webhookID: Int64
        /// 1 for the first attempt.
        public var number: Int
        public var body: String
        public var url: String
        public var sealedSecretHex: String
        public var giveUpAt: Date
    }

    /// A new subscription, its secret sealed by `seal` for the id it gets.
    public func create(_ definition: WebhookDefinition, cluster: String,
                       seal: @Sendable (Int64) throws -> String) async throws -> Webhook {
        try await pool.transaction { connection in
            try Self.requireCluster(cluster, on: connection)
            let id: Int64 = try connection.query(WebhooksSQL.nextID).single().decode("id")
            let row = try connection.query(WebhooksSQL.create, [cluster, id, definition.url.description, definition.events,
                                                                 definition.types, try seal(id)]).single()
            return try Webhook(row: row)
        }
    }

    public func webhook(cluster: String, id: Int64) async throws -> Webhook {
        guard let row = try await pool.query(WebhooksSQL.get, [cluster, id]).first else { throw unknownWebhook(cluster, id) }
        return try Webhook(row: row)
    }

    public func webhooks(cluster: String, limit: Int = 1000) async throws -> [Webhook] {
        try await pool.withConnection { connection in
            try Self.requireCluster(cluster, on: connection)
            return try connection.query(WebhooksSQL.list, [cluster, limit]).map { row throws(PostgresError) in try Webhook(row: row) }
        }
    }

    /// Deletes the subscription and its delivery log; attempts under way finish unrecorded.
    public func delete(cluster: String, id: Int64) async throws {
        guard try await !pool.query(WebhooksSQL.delete, [cluster, id]).isEmpty else { throw unknownWebhook(cluster, id) }
    }

    // MARK: - The leader's side

    public func subscriptions() async throws -> [Subscription] {
        try await pool.query(WebhooksSQL.subscriptions).map { row throws(PostgresError) in
            let xid: String = try row.decode("cursor_xid")
            return Subscription(webhook: try Webhook(row: row), sealedSecretHex: try row.decode("secret_sealed"),
                                position: ChangeCursor(transaction: UInt64(xid) ?? 0, event: try row.decode("cursor_event")))
        }
    }

    /// Up to `limit` of the changes the subscription delivers after its position.
    public func changes(for subscription: Subscription, limit: Int) async throws -> ChangePage {
        let webhook = subscription.webhook
        let from = subscription.position
        let rows = try await pool.query(WebhooksSQL.events, [webhook.clusterID, String(from.transaction), from.event,
                                                              webhook.states.map(\.rawValue), webhook.types, limit])
        return try TaskReads.changePage(rows, from: from, rowLimit: limit)
    }

    /// Writes `deliveries` and moves the subscription's position from where it was read to `next`, in one
    /// statement; false (nothing written) when it moved meanwhile.
    public func record(_ deliveries: [NewDelivery], for subscription: Subscription, next: ChangeCursor,
                       tryFor: Duration) async throws -> Bool {
        let webhook = subscription.webhook
        let from = subscription.position
        let row = try await pool.query(WebhooksSQL.record, [
            webhook.clusterID, webhook.id, String(from.transaction), from.event, String(next.transaction), next.event,
            deliveries.map { String($0.change.cursor.transaction) }, deliveries.map(\.change.cursor.event),
            deliveries.map(\.change.event.taskID), deliveries.map(\.event), deliveries.map(\.body), tryFor.inSeconds,
        ]).single()
        return try row.decode("moved")
    }

    /// Takes up to `limit` of the subscription's due deliveries for an attempt each; an attempt not finished
    /// within `attemptTimeout` counts as failed.
    public func take(webhook: Int64, limit: Int, attemptTimeout: Duration) async throws -> [Attempt] {
        let rows = try await pool.query(WebhooksSQL.take, [webhook, limit, attemptTimeout.inSeconds])
        return try rows.map { row throws(PostgresError) in
            Attempt(deliveryID: try row.decode("id"), clusterID: try row.decode("cluster_id"), webhookID: try row.decode("webhook_id"),
                    number: try row.decode("attempts"), body: try row.decode("body"), url: try row.decode("url"),
                    sealedSecretHex: try row.decode("secret_sealed"), giveUpAt: try row.decode("give_up_at"))
        }
    }

    /// How an attempt went: delivered, or else to be tried again at `retryAt` (failed for good when that is
    /// past the delivery's day).
    public struct Outcome: Sendable {
        public var attempt: Attempt
        public var delivered: Bool
        public var status: Int?
        public var error: String?
        public var retryAt: Date

        public init(attempt: Attempt, delivered: Bool, status: Int?, error: String?, retryAt: Date) {
            self.attempt = attempt
            self.delivered = delivered
            self.status = status
            self.error = error
            self.retryAt = retryAt
        }
    }

    /// Records attempts' outcomes in one statement. The record of an attempt superseded by a later one
    /// changes nothing.
    public func finish(_ outcomes: [Outcome]) async throws {
        guard !outcomes.isEmpty else { return }
        try await pool.query(WebhooksSQL.finishAttempts, [
            outcomes.map(\.attempt.deliveryID), outcomes.map { Int32($0.attempt.number) }, outcomes.map(\.delivered),
            outcomes.map { $0.status.map(Int32.init) }, outcomes.map { $0.error.map { String($0.prefix(500)) } }, outcomes.map(\.retryAt),
        ])
    }

    /// A page of the subscription's delivery log, newest first, before the delivery id `before`.
    public func deliveries(cluster: String, webhookID: Int64, state: WebhookDelivery.State?, before: Int64?,
                           limit: Int) async throws -> [WebhookDelivery] {
        let rows = try await pool.withConnection { connection in
            guard try !connection.query(WebhooksSQL.get, [cluster, webhookID]).isEmpty else { throw unknownWebhook(cluster, webhookID) }
            return try connection.query(WebhooksSQL.deliveries, [cluster, webhookID, before ?? Int64.max, state?.rawValue, limit])
        }
        return try rows.map { row throws(PostgresError) in try WebhookDelivery(row: row) }
    }

    /// Sends the delivery again now, tried for `tryFor` from now whatever happened to it before.
    public func resend(cluster: String, webhookID: Int64, deliveryID: Int64, tryFor: Duration) async throws -> WebhookDelivery {
        guard let row = try await pool.query(WebhooksSQL.resend, [cluster, webhookID, deliveryID, tryFor.inSeconds]).first else {
            _ = try await webhook(cluster: cluster, id: webhookID)
            throw TaskyardError(.notFound, code: .deliveryNotFound,
                                message: "delivery \(deliveryID) does not exist for webhook \(webhookID) of cluster \(cluster)")
        }
        return try WebhookDelivery(row: row)
    }

    /// Forgets up to `limit` finished deliveries made before `before`; how many.
    public func prune(before: Date, limit: Int = 10_000) async throws -> Int {
        try await pool.query(WebhooksSQL.prune, [before, limit]).affectedRows
    }
}

func unknownWebhook(_ cluster: String, _ id: Int64) -> TaskyardError {
    TaskyardError(.notFound, code: .webhookNotFound, message: "webhook \(id) does not exist in cluster \(cluster)")
}

extension Webhook {
    init(row: PostgresRow) throws(PostgresError) {
        let url: String = try row.decode("url")
        guard let parsed = try? WebhookURL(parsing: url) else {
            throw PostgresError(kind: .decoding, message: "webhooks.url is not a webhook URL")
        }
        self.init(clusterID: try row.decode("cluster_id"), id: try row.decode("id"), url: parsed, events: try row.decode("events"),
                  types: try row.decode("types"), createdAt: try row.decode("created_at"))
    }
}

extension WebhookDelivery {
    init(row: PostgresRow) throws(PostgresError) {
        let xid: String = try row.decode("event_xid")
        self.init(clusterID: try row.decode("cluster_id"), id: try row.decode("id"), webhookID: try row.decode("webhook_id"),
                  eventCursor: ChangeCursor(transaction: UInt64(xid) ?? 0, event: try row.decode("event_id")),
                  taskID: try row.decode("task_id"), event: try row.decode("event"),
                  state: WebhookDelivery.State(rawValue: try row.decode("state")) ?? .pending, attempts: try row.decode("attempts"),
                  nextAttemptAt: try row.decode("next_attempt_at"), giveUpAt: try row.decode("give_up_at"),
                  lastStatus: try row.decode("last_status"), lastError: try row.decode("last_error"),
                  lastAttemptAt: try row.decode("last_attempt_at"), deliveredAt: try row.decode("delivered_at"),
                  createdAt: try row.decode("created_at"))
    }
}
