import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity
import TaskyardStore

/// Delivers webhooks (Svix's and Hatchet's model, signed as Standard Webhooks says). Each run, on the
/// maintenance leader: every subscription's new matching changes become deliveries (the events table is
/// the outbox: a transition and its event commit together), and each subscription with deliveries due gets
/// a lane — a task of its own that sends them, `perSubscription` at once, until none is due. A receiver
/// that hangs holds up its own lane and nothing else. A delivery is tried with backoff for `tryFor`;
/// redirects are never followed.
public struct WebhookDispatcher: MaintenanceDuty {
    public struct Configuration: MaintenanceDutyConfiguration {
        /// How often new changes are looked for and due deliveries sent. Default 250 ms.
        public var interval: Duration = .milliseconds(250)
        /// An attempt without an answer this long has failed. Default 10 s.
        public var attemptTimeout: Duration = .seconds(10)
        /// How long a delivery is tried (from when it was made, or resent). Default one day.
        public var tryFor: Duration = .seconds(86_400)
        public var backoff = WebhookBackoff()
        /// Subscriptions sent to at once on this server (their lanes), and attempts under way at once in one.
        public var maximumLanes = 16
        public var perSubscription = 16
        /// Changes read for a subscription per read.
        public var pageSize = 500
        /// Delivered and failed deliveries are kept this long in the log. Default 7 days.
        public var logRetention: Duration = .seconds(7 * 86_400)
        public init() {}
    }

    public let name = "webhooks"
    public let configuration: Configuration
    private let keyFile: KeyFile
    private let lanes: Lanes

    public init(configuration: Configuration = Configuration(), keyFile: KeyFile) {
        self.configuration = configuration
        self.keyFile = keyFile
        lanes = Lanes()
    }

    public func run(_ context: MaintenanceContext) async throws {
        let subscriptions = try await context.store.webhooks.subscriptions()
        try await writeDeliveries(subscriptions, context)
        for subscription in subscriptions {
            let id = subscription.webhook.id
            lanes.open(id, maximum: configuration.maximumLanes) {
                await sendDue(webhook: id, context)
            }
        }
        if lanes.pruneIsDue() {
            let pruned = try await context.store.webhooks.prune(before: Date() - configuration.logRetention.inSeconds)
            if pruned > 0 { context.logger.info("forgot old webhook deliveries", metadata: ["deliveries": "\(pruned)"]) }
        }
    }

    /// Turns each subscription's matching changes since its position into deliveries, page by page.
    private func writeDeliveries(_ subscriptions: [WebhookStore.Subscription], _ context: MaintenanceContext) async throws {
        let store = context.store
        for var subscription in subscriptions {
            while true {
                let page = try await store.webhooks.changes(for: subscription, limit: configuration.pageSize)
                guard page.next != subscription.position else { break }
                let tasks = try await store.reads.tasks(cluster: subscription.webhook.clusterID,
                                                        ids: Array(Set(page.changes.map(\.event.taskID))))
                let byID = Dictionary(tasks.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                let deliveries = try page.changes.map { change in
                    let event = WebhookEvent.name(of: change.event.to)
                    let message = WebhookMessage(type: event, timestamp: change.event.at, data: .init(
                        clusterID: subscription.webhook.clusterID, change: change, task: byID[change.event.taskID].map(TaskObject.init)))
                    return WebhookStore.NewDelivery(change: change, event: event, body: String(decoding: try APIJSON.encode(message), as: UTF8.self))
                }
                // Moved meanwhile (another leader for a moment): it wrote these; the next run goes on from there.
                guard try await store.webhooks.record(deliveries, for: subscription, next: page.next, tryFor: configuration.tryFor) else { break }
                subscription.position = page.next
                if page.changes.count < configuration.pageSize { break }
            }
        }
    }

    /// Ends every lane: attempts under way are cancelled (and made again by the next leader when their
    /// lease ends).
    public func stop() async {
        await lanes.cancelAll()
    }

    /// A subscription's lane: its due deliveries, `perSubscription` at a time, until none is due.
    private func sendDue(webhook: Int64, _ context: MaintenanceContext) async {
        // Counted as failed if no outcome is recorded by then: the request's deadline and a margin.
        let lease = configuration.attemptTimeout + .seconds(5)
        while !Task.isCancelled {
            let due: [WebhookStore.Attempt]
            do {
                due = try await context.store.webhooks.take(webhook: webhook, limit: configuration.perSubscription, attemptTimeout: lease)
            } catch {
                if !Task.isCancelled {
                    context.logger.warning("due webhook deliveries could not be read", metadata: ["webhook": "\(webhook)", "error": "\(error)"])
                }
                return
            }
            if due.isEmpty { return }
            let outcomes = await withTaskGroup(of: WebhookStore.Outcome.self) { group in
                for attempt in due { group.addTask { await send(attempt, context) } }
                return await group.reduce(into: []) { $0.append($1) }
            }
            // Stopped meanwhile: what was cut short is not an outcome.
            if Task.isCancelled { return }
            do {
                try await context.store.webhooks.finish(outcomes)
            } catch {
                // Not recorded: the attempts count as failed when their lease ends, and are made again.
                context.logger.warning("webhook attempts' outcomes could not be recorded", metadata: ["webhook": "\(webhook)", "error": "\(error)"])
                return
            }
        }
    }

    private func send(_ attempt: WebhookStore.Attempt, _ context: MaintenanceContext) async -> WebhookStore.Outcome {
        let outcome = await deliver(attempt)
        if !outcome.delivered {
            context.logger.info("webhook delivery failed", metadata: [
                "cluster": "\(attempt.clusterID)", "webhook": "\(attempt.webhookID)", "delivery": "\(attempt.deliveryID)",
                "attempt": "\(attempt.number)", "error": "\(outcome.error ?? "")",
            ])
        }
        return WebhookStore.Outcome(attempt: attempt, delivered: outcome.delivered, status: outcome.status, error: outcome.error,
                                    retryAt: Date() + configuration.backoff.jittered(afterAttempt: attempt.number).inSeconds)
    }

    /// One POST of the delivery's body, signed now. Any 2xx delivers it; anything else is a failure.
    private func deliver(_ attempt: WebhookStore.Attempt) async -> (delivered: Bool, status: Int?, error: String?) {
        let secret: WebhookSecret
        do {
            guard let sealed = Hex.decode(attempt.sealedSecretHex) else { throw CancellationError() }
            secret = try keyFile.unseal(webhookSecret: sealed, cluster: attempt.clusterID, webhookID: attempt.webhookID)
        } catch {
            return (false, nil, "the subscription's secret does not open with this server's key file")
        }
        let body = Data(attempt.body.utf8)
        let messageID = WebhookDelivery.messageID(attempt.deliveryID)
        let timestamp = Int64(Date().timeIntervalSince1970)
        var request = HTTPClientRequest(url: attempt.url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: "taskyard-webhooks")
        request.headers.add(name: "webhook-id", value: messageID)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(name: "webhook-signature", value: secret.signature(messageID: messageID, timestamp: timestamp, body: body))
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await HTTPTransport.shared.client.execute(
                request, timeout: .milliseconds(configuration.attemptTimeout.wholeMilliseconds))
            let status = Int(response.status.code)
            switch status {
            case 200..<300:
                return (true, status, nil)
            case 300..<400:
                let location = response.headers.first(name: "location").map { " to \(String($0.prefix(200)))" } ?? ""
                return (false, status, "answered \(status) (a redirect\(location)): redirects are not followed")
            default:
                return (false, status, "answered \(status)")
            }
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            return (false, nil, "no answer within \(configuration.attemptTimeout)")
        } catch {
            return (false, nil, String(describing: error))
        }
    }
}

/// The subscriptions this server is sending to (their lanes), one lane — a task — each.
final class Lanes: Sendable {
    private let running = Mutex<[Int64: Task<Void, Never>]>([:])
    private let lastPrune = Mutex<ContinuousClock.Instant?>(nil)

    /// Runs `work` as the subscription's lane, unless it has one already or `maximum` lanes run.
    func open(_ webhook: Int64, maximum: Int, _ work: @escaping @Sendable () async -> Void) {
        running.withLock { running in
            guard running[webhook] == nil, running.count < maximum else { return }
            running[webhook] = Task {
                await work()
                _ = self.running.withLock { $0.removeValue(forKey: webhook) }
            }
        }
    }

    /// Cancels every lane and waits for them to end.
    func cancelAll() async {
        let tasks = running.withLock { Array($0.values) }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    /// True once a minute: the delivery log is pruned.
    func pruneIsDue() -> Bool {
        lastPrune.withLock { last in
            let now = ContinuousClock.now
            if let last, last.duration(to: now) < .seconds(60) { return false }
            last = now
            return true
        }
    }
}
