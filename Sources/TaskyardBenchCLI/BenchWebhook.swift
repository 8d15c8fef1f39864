import Foundation
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardStore

/// `--webhook`: a receiver on loopback that answers every delivery 204, subscribed to the measured
/// cluster's `task.completed` — so that the runs measure the hot path with a subscription active (the
/// maintenance leader reading the events and sending a delivery per task beside the load).
final class BenchWebhook: Sendable {
    /// What the subscription did over the whole bench.
    struct Counts: Codable, Sendable {
        /// Requests the receiver answered.
        var received: Int
        /// The delivery log at the end: delivered, and not yet.
        var delivered: Int
        var pending: Int
    }

    private let received = Atomic<Int>(0)
    private let server = Mutex<ServiceGroup?>(nil)

    /// Serves the receiver and subscribes it to the cluster's completions.
    func start(client: TaskyardClient, cluster: String) async throws {
        let router = Router()
        router.post("/**") { [self] _, _ -> HTTPResponse.Status in
            received.add(1, ordering: .relaxed)
            return .noContent
        }
        let (ports, announce) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "taskyard.bench.webhook")
        logger.logLevel = .error
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { announce.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [app], logger: logger))
        server.withLock { $0 = group }
        Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw BenchError("the webhook receiver did not start") }
        _ = try await client.createWebhook(cluster: cluster, WebhookRequest(url: "http://127.0.0.1:\(port)/bench", events: ["task.completed"]))
    }

    /// Stops the receiver; what it and the delivery log counted.
    func stop(store: TaskStore) async throws -> Counts {
        await server.withLock { $0 }?.triggerGracefulShutdown()
        let row = try await store.pool.query(BenchSQL.webhookDeliveries).single()
        return Counts(received: received.load(ordering: .relaxed), delivered: try row.decode("delivered"), pending: try row.decode("pending"))
    }
}
