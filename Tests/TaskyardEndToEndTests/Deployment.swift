import Foundation
import Logging
import Postgres
import ServiceLifecycle
import TaskyardAgent
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardServer
import TaskyardStore
import TaskyardTestSupport
import Testing

/// A real deployment for a test: a fresh database, the HTTP server and node agents on loopback ports,
/// all in this process, talking HTTP to each other. Torn down when the body returns.
struct Deployment: Sendable {
    static let cluster = "c1"
    let serverURL: String
    let store: TaskStore
    /// A client with an admin token for every cluster.
    let client: TaskyardClient
    let adminToken: String
    /// The node agents, by node.
    var agents: [String: NodeAgent] = [:]

    /// What the `taskyard` command line needs to act as this deployment's admin.
    var cliEnvironment: [String: String] { ["TASKYARD_TOKEN": adminToken] }

    /// A client of this deployment's server with `token` (nil: none at all).
    func client(token: String?) -> TaskyardClient {
        TaskyardClient(baseURL: serverURL, token: token, transport: client.transport)
    }

    static var quietLogger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["TASKYARD_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return logger
    }

    /// `handlers(node)` gives each agent its handlers (default: the built-ins).
    static func run<T: Sendable>(
        cluster: String = Deployment.cluster,
        nodes: [String] = ["n1", "n2", "n3"],
        handlers: @escaping @Sendable (String) -> HandlerRegistry = { _ in .builtins() },
        agentSettings: @escaping @Sendable (inout AgentConfiguration) -> Void = { _ in },
        serverSettings: @escaping @Sendable (inout ServerConfiguration) -> Void = { _ in },
        caFile: String? = nil,
        _ body: @escaping @Sendable (Deployment) async throws -> T
    ) async throws -> T {
        try await TestDatabase.withStore { store in
            try await run(on: store, cluster: cluster, nodes: nodes, handlers: handlers, agentSettings: agentSettings,
                          serverSettings: serverSettings, caFile: caFile, body)
        }
    }

    /// The same over a store the caller owns (a database it may restart, say).
    static func run<T: Sendable>(
        on store: TaskStore,
        cluster: String = Deployment.cluster,
        nodes: [String] = ["n1", "n2", "n3"],
        handlers: @escaping @Sendable (String) -> HandlerRegistry = { _ in .builtins() },
        agentSettings: @escaping @Sendable (inout AgentConfiguration) -> Void = { _ in },
        serverSettings: @escaping @Sendable (inout ServerConfiguration) -> Void = { _ in },
        caFile: String? = nil,
        _ body: @escaping @Sendable (Deployment) async throws -> T
    ) async throws -> T {
        do {
            _ = try await store.clusters.createCluster(id: cluster, name: "test")
        } catch let error as TaskyardError where error.code == .clusterExists {
            // A second deployment on the same store (a restart): the cluster is there.
        }
        var configuration = ServerConfiguration(keyFile: TestEnvironment.keyFile)
        configuration.port = 0
        configuration.pollRecheckInterval = .milliseconds(20)
        configuration.maintenanceLeader.retryInterval = .milliseconds(200)
        serverSettings(&configuration)
        let (ports, announce) = AsyncStream<Int>.makeStream()
        let adminToken = try await store.mintToken(scopes: [.admin], name: "test admin")
        var nodeTokens: [String: String] = [:]
        for node in nodes { nodeTokens[node] = try await store.mintNodeToken(cluster: cluster, node: node) }
        let app = try TaskyardHTTPServer.application(store: store, configuration: configuration, logger: quietLogger) {
            announce.yield($0)
        }
        return try await withThrowingTaskGroup(of: T?.self) { group -> T in
            group.addTask { try await app.serveUntilCancelled(); return nil }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw DeploymentError("the server did not start") }
            let serverURL = "\(configuration.tls == nil ? "http" : "https")://127.0.0.1:\(port)"
            let transport = try HTTPTransport.trusting(caFile: caFile)
            var agents: [String: NodeAgent] = [:]
            for node in nodes {
                var agentConfiguration = AgentConfiguration(server: serverURL, cluster: cluster, node: node)
                agentConfiguration.listenPort = 0
                agentConfiguration.pollWait = .seconds(5)
                agentConfiguration.token = nodeTokens[node]
                agentConfiguration.caFile = caFile
                agentSettings(&agentConfiguration)
                let agent = try NodeAgent(configuration: agentConfiguration, handlers: handlers(node), logger: quietLogger)
                agents[node] = agent
                group.addTask { try await agent.services.serveUntilCancelled(); return nil }
            }
            let client = TaskyardClient(baseURL: serverURL, token: adminToken, transport: transport)
            try await eventually("the agents register", every: .milliseconds(20)) {
                if nodes.isEmpty { return true }
                return try await client.nodes(cluster: cluster).count >= nodes.count
            }
            let result = try await body(Deployment(serverURL: serverURL, store: store, client: client, adminToken: adminToken,
                                                   agents: agents))
            group.cancelAll()
            return result
        }
    }

    /// Waits until the task is terminal.
    func finished(_ id: Int64, cluster: String = Deployment.cluster, within limit: Duration = .seconds(30)) async throws -> TaskDetail {
        try await detail(id, cluster: cluster, within: limit, until: "terminal") { $0.task.state.isTerminal }
    }

    /// Polls the task until `condition` holds of it.
    func detail(_ id: Int64, cluster: String = Deployment.cluster, within limit: Duration = .seconds(30), until what: String,
                _ condition: (TaskDetail) -> Bool) async throws -> TaskDetail {
        var detail = try await client.task(cluster: cluster, id: id)
        do {
            try await eventually("task \(id) \(what)", within: limit, every: .milliseconds(25)) {
                detail = try await client.task(cluster: cluster, id: id)
                return condition(detail)
            }
        } catch is EventuallyError {
            throw DeploymentError("task \(id) still not \(what) after \(limit): \(detail.task.state)")
        }
        return detail
    }
}

struct DeploymentError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Counts handler invocations per node and task, to prove each participant really ran.
extension Deployment {
    /// A deployment whose `agents` are real agents with `handlers` (the built-ins and more), and whose n1 is
    /// registered by hand and polled by the test, which so holds real claims with real grants to call the
    /// agents' participant endpoints with: `body` gets each agent's endpoint by node.
    static func withHandPolledInitiator(
        agents: [String], handlers: @escaping @Sendable (inout HandlerRegistry) -> Void,
        agentSettings: @escaping @Sendable (inout AgentConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (Deployment, _ endpoints: [String: NodeEndpoint]) async throws -> Void
    ) async throws {
        try await Deployment.run(nodes: agents, handlers: { _ in
            var registry = HandlerRegistry.builtins()
            handlers(&registry)
            return registry
        }, agentSettings: agentSettings) { deployment in
            _ = try await deployment.client.registerNode(cluster: cluster, node: "n1", RegisterNodeRequest(endpoint: "http://127.0.0.1:9"))
            var endpoints: [String: NodeEndpoint] = [:]
            for node in try await deployment.client.nodes(cluster: cluster) where agents.contains(node.id) {
                endpoints[node.id] = try NodeEndpoint(parsing: node.endpoint)
            }
            try await body(deployment, endpoints)
        }
    }
}

actor InvocationCounter {
    private(set) var calls: [String: Int] = [:]
    func record(_ work: ParticipantWork) { calls["\(work.node)/\(work.taskID)", default: 0] += 1 }
    var total: Int { calls.values.reduce(0, +) }
}

extension Service {
    /// Runs this server until the calling task is cancelled, then shuts it down gracefully.
    func serveUntilCancelled() async throws {
        try await [self].serveUntilCancelled()
    }
}

extension Array where Element == any Service {
    /// Runs these services until the calling task is cancelled, then shuts them down gracefully, in reverse
    /// order. Cancelling Hummingbird's serve loop outright can drop a connection it has accepted but not yet
    /// served, which traps in swift-nio ("Deinited NIOAsyncWriter without calling finish()",
    /// apple/swift-nio#3481); a graceful shutdown closes the listener first, and what still runs two seconds
    /// later is cancelled.
    func serveUntilCancelled() async throws {
        var configuration = ServiceGroupConfiguration(services: self, logger: Deployment.quietLogger)
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        let group = ServiceGroup(configuration: configuration)
        // Unstructured, so that the caller's cancellation reaches it only as the graceful shutdown below.
        let serving = Task { try await group.run() }
        await withTaskCancellationHandler {
            _ = await serving.result
        } onCancel: {
            Task { await group.triggerGracefulShutdown() }
        }
        try await serving.value
    }
}
