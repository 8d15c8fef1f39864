import Hummingbird
import Logging
import NIOCore
import TaskyardStore

/// The HTTP API over a task store: every route of the contract, errors in its shape.
public enum TaskyardHTTPServer {
    /// An application to run (it is a `Service`: run it in a ServiceGroup, or call `runService()`).
    /// `onListening` receives the port it listens on, useful with port 0.
    public static func application(
        store: TaskStore, configuration: ServerConfiguration, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let maintenance = MaintenanceLeader(
            store: store,
            duties: [LeaseExpirer(configuration: configuration.leaseExpirer),
                     NodeMonitor(configuration: configuration.nodeMonitor),
                     RetentionCleaner(configuration: configuration.retention),
                     StatisticsKeeper(configuration: configuration.statistics)],
            configuration: configuration.maintenanceLeader, logger: logger)
        let wakeups = Wakeups(database: store.pool.configuration, logger: logger)
        let routes = APIRoutes(store: store, configuration: configuration, maintenance: maintenance, wakeups: wakeups).routes()
        var table = RouteTable()
        for route in routes { table.add(route.method, route.path) }
        let router = Router(context: BasicRequestContext.self)
        // Middleware applies to the routes registered after it.
        router.middlewares.add(APIErrorMiddleware(routes: table))
        for route in routes {
            router.on(RouterPath(route.path), method: route.method) { request, context in
                var request = request
                return try await route.handler(&request, context)
            }
        }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port),
                                                    serverName: "taskyard"),
            services: configuration.maintenanceEnabled ? [wakeups, maintenance] : [wakeups],
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) },
            logger: logger
        )
    }
}
