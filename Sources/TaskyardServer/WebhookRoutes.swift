import Foundation
import Hummingbird
import TaskyardAPI
import TaskyardDomain
import TaskyardSecurity

/// `…/webhooks`: signed deliveries of a cluster's transitions (the leader's `WebhookDispatcher` sends them).
extension APIRoutes {
    func createWebhook(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let definition = try await decode(WebhookRequest.self, &request).definition()
        let secret = WebhookSecret.random()
        let keyFile = configuration.keyFile
        let webhook = try await store.webhooks.create(definition, cluster: cluster) { id in
            Hex.encode(try keyFile.seal(webhookSecret: secret, cluster: cluster, webhookID: id))
        }
        return try jsonResponse(WebhookObject(webhook, secret: secret.text), status: .created)
    }

    func listWebhooks(_ request: Request, _ context: TaskyardRequestContext) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        return try jsonResponse(WebhookList(webhooks: try await store.webhooks.webhooks(cluster: cluster).map { WebhookObject($0) }))
    }

    func getWebhook(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        return try jsonResponse(WebhookObject(try await store.webhooks.webhook(cluster: cluster, id: try webhookID(context, cluster))))
    }

    func deleteWebhook(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        try await store.webhooks.delete(cluster: cluster, id: try webhookID(context, cluster))
        return Response(status: .noContent)
    }

    /// The delivery log, newest first: `?status=pending|delivered|failed`, `?limit=` (default 100, at most
    /// 1000), `?before=` (the `next` of the page before).
    func listDeliveries(_ request: Request, _ context: TaskyardRequestContext) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try webhookID(context, cluster)
        var state: WebhookDelivery.State?
        if let text = request.query("status") {
            guard let parsed = WebhookDelivery.State(rawValue: text) else {
                throw APIError.badRequest("status must be one of pending, delivered, failed", field: "status")
            }
            state = parsed
        }
        let limit = try request.queryInt("limit", in: 1...1000) ?? 100
        let before = try request.queryInt("before", in: 1...Int.max).map(Int64.init)
        let deliveries = try await store.webhooks.deliveries(cluster: cluster, webhookID: id, state: state, before: before, limit: limit)
        let next = deliveries.count == limit ? deliveries.last?.id : nil
        return try jsonResponse(DeliveryList(deliveries: deliveries.map(DeliveryObject.init), next: next))
    }

    /// Sends a delivery again now (delivered, failed or waiting), with a day of attempts from now.
    func resendDelivery(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try webhookID(context, cluster)
        let deliveryID = try context.positiveID("delivery_id", naming: "delivery", code: .deliveryNotFound, cluster: cluster)
        let delivery = try await store.webhooks.resend(cluster: cluster, webhookID: id, deliveryID: deliveryID,
                                                        tryFor: configuration.webhooks.tryFor)
        return try jsonResponse(DeliveryObject(delivery), status: .accepted)
    }

    private func webhookID(_ context: TaskyardRequestContext, _ cluster: String) throws -> Int64 {
        try context.positiveID("webhook_id", naming: "webhook", code: .webhookNotFound, cluster: cluster)
    }
}
