import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import TaskyardDomain
import TaskyardStore

/// The HTTP API over a task store: every route of the contract, each behind its access rule, errors in
/// the contract's shape.
public enum TaskyardHTTPServer {
    /// An application to run (it is a `Service`: run it in a ServiceGroup, or call `runService()`).
    /// `onListening` receives the port it listens on, useful with port 0. Throws when the TLS files
    /// cannot be read.
    public static func application(
        store: TaskStore, configuration: ServerConfiguration, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let maintenance = MaintenanceLeader(
            store: store,
            duties: [LeaseExpirer(configuration: configuration.leaseExpirer),
                     NodeMonitor(configuration: configuration.nodeMonitor),
                     RetentionCleaner(configuration: configuration.retention),
                     StatisticsKeeper(configuration: configuration.statistics),
                     ScheduleRunner(configuration: configuration.schedules),
                     WebhookDispatcher(configuration: configuration.webhooks, keyFile: configuration.keyFile)]
                + (configuration.stats.interval > .zero ? [StatsRollup(configuration: configuration.stats)] : []),
            configuration: configuration.maintenanceLeader, logger: logger)
        let wakeups = Wakeups(signals: store.signals, database: store.database, logger: logger)
        let credentials = store.credentials
        let authenticator = Authenticator(credentials: credentials, configuration: configuration.authentication, logger: logger)
        let replica = configuration.readReplica.map { ReadReplica(configuration: $0, logger: logger) }
        let metrics = ServerMetrics(store: store, wakeups: wakeups, maintenance: maintenance, replica: replica)
        let routes = APIRoutes(store: store, credentials: credentials, authenticator: authenticator, grants: GrantIssuer(credentials: credentials, keyFile: configuration.keyFile),
                               configuration: configuration, maintenance: maintenance, wakeups: wakeups,
                               metrics: metrics, replica: replica).routes()
        var table = RouteTable()
        for route in routes { table.add(route.method, route.path) }
        let router = Router(context: TaskyardRequestContext.self)
        // Middleware applies to the routes registered after it.
        router.middlewares.add(MetricsMiddleware())
        router.middlewares.add(APIErrorMiddleware(routes: table))
        let connections = ClientWatcher.Connections(maximum: configuration.maximumConnections,
                                                    nodeReserve: configuration.nodeConnectionReserve)
        for route in routes {
            router.on(RouterPath(route.path), method: route.method) { request, context in
                var request = request
                let caller = try await authorize(route.access, request, context, authenticator)
                if connections.overClientShare, let caller, caller.kind != .node {
                    var busy = APIError(.serviceUnavailable, code: .serverBusy,
                                        message: "the server holds more connections than clients may have; the rest are kept for agents: retry shortly")
                    busy.headers[.retryAfter] = "1"
                    throw busy
                }
                // A caller that writes reads its writes back from the primary for a while.
                if let replica, let caller, route.method != .get { replica.wrote(caller) }
                return try await route.handler(&request, context, caller)
            }
        }
        // A connection idle between requests (or stalled mid-request) is closed; a request being handled,
        // a long poll included, is not idle.
        let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [ClientWatcher(connections: connections)],
                                               idleTimeout: .nanoseconds(Int64(configuration.idleTimeout.components.seconds) * 1_000_000_000))
        let server: HTTPServerBuilder = if let tls = configuration.tls {
            try .tls(.http1(configuration: http1), tlsConfiguration: tls.serverConfiguration())
        } else {
            .http1(configuration: http1)
        }
        return Application(
            router: router,
            server: server,
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port),
                                                    serverName: "taskyard"),
            services: (configuration.maintenanceEnabled ? [wakeups, maintenance] : [wakeups]) + [authenticator] + (replica.map { [$0] } ?? []),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
    }

    /// The caller's token, when the route's rule lets it in: 401 without a valid token, 403 when the
    /// token may not call this route on this path. Decided before the body is read: a refused request
    /// writes nothing.
    private static func authorize(_ access: Access, _ request: Request, _ context: TaskyardRequestContext,
                                  _ authenticator: Authenticator) async throws -> APIToken? {
        if case .open = access { return nil }
        let token = try await authenticator.authenticate(request)
        let cluster = context.parameters.get("cluster_id")
        let node = context.parameters.get("node_id")
        guard access.allows(token, cluster: cluster, node: node) else {
            throw APIError.forbidden(refusal(access, token, cluster: cluster, node: node))
        }
        return token
    }

    private static func refusal(_ access: Access, _ token: APIToken, cluster: String?, node: String?) -> String {
        if token.kind == .node {
            return "a node token speaks only for node \(token.nodeID ?? "") of cluster \(token.clusterID ?? "") on its own paths"
        }
        if let cluster, !token.covers(cluster: cluster) {
            return "this token is bound to cluster \(token.clusterID ?? ""), not \(cluster)"
        }
        switch access {
        case .client(let scope), .clientOrClusterNode(let scope):
            return "this token lacks the \(scope.rawValue) scope (it has \(token.scopes.map(\.rawValue).joined(separator: ", ")))"
        case .pathNode:
            return "only node \(node ?? "")'s own token, or an admin token, may call this"
        case .open:
            return "forbidden"
        }
    }
}
