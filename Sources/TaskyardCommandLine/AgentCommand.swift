import ArgumentParser
import Foundation
import TaskyardAgent

public struct AgentCommand: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the node agent of one node.",
        discussion: """
            Registers the node, polls the server for the tasks assigned to it, fans each out to the task's participating nodes, and reports the outcome. Serves the participant endpoint that other agents call. Handlers: built-in noop, echo, sleep and fail, plus an executable DIR/<type> per type with --handlers (payload JSON on stdin, result JSON on stdout, exit 0 for success). On SIGTERM it stops polling and finishes what it holds within the grace period.

            The same agent is also its own lean binary, taskyard-agent, without the server and PostgreSQL parts (less memory on every node).

            The agent authenticates with its node's token (taskyard token create --kind node --cluster C --node N), from --token-file or $TASKYARD_TOKEN. Its participant endpoint runs handlers only for calls carrying a grant the server signed for this node; executable handlers get a minimal environment (PATH, HOME, LANG, the TASKYARD_* variables and each --handler-env NAME), never the agent's token.

            Example:
              taskyard agent --server https://taskyard.example:8443 --ca-file ca.pem --token-file /etc/taskyard/n1.token \\
                --cluster dev --node n1 --listen 0.0.0.0:7001 --endpoint https://n1.example:7001 \\
                --tls-cert-file n1.pem --tls-key-file n1-key.pem --handlers ./handlers
            """
    )

    @OptionGroup var serverOptions: ServerOptions
    @OptionGroup var clusterOption: ClusterOption

    @Option(help: ArgumentHelp("This node's id. Default: $TASKYARD_NODE.", valueName: "id"))
    var node: String?

    @Option(help: ArgumentHelp("Address of the participant endpoint. Default: $TASKYARD_AGENT_LISTEN, else 127.0.0.1:7001.", valueName: "host:port"))
    var listen: String?

    @Option(help: ArgumentHelp("URL other agents use to reach this one. Default: http://<listen address>.", valueName: "url"))
    var endpoint: String?

    @Option(help: ArgumentHelp("Folder of executable handlers, one per task type. Default: $TASKYARD_HANDLERS.", valueName: "dir"))
    var handlers: String?

    @Option(help: ArgumentHelp("An environment variable of the agent's that executable handlers also get; repeat for several.", valueName: "name"))
    var handlerEnv: [String] = []

    @Option(help: ArgumentHelp("Run executable handlers as this user, so that they cannot read the agent's token file or anything else only the agent's user may (the agent must start as root). Default: the agent's own user.", valueName: "name"))
    var handlerUser: String?

    @OptionGroup var tls: TLSOptions

    @Option(help: ArgumentHelp("Tasks run at once as initiator. Default 8.", valueName: "n"))
    var concurrency = 8

    @Option(help: ArgumentHelp("Seconds a poll waits on the server for work. Default 20.", valueName: "seconds"))
    var pollWait = 20.0

    @Option(help: ArgumentHelp("Seconds one participant call may take. Default 300.", valueName: "seconds"))
    var participantTimeout = 300.0

    @Option(help: ArgumentHelp("Handler runs at once on this node, as participant of any task (its own fan-outs' parts included); more calls wait their turn. Give it at least the sum of the agents' --concurrency that fan out to this node. Default 1024.", valueName: "n"))
    var maxHandlerRuns = 1024

    @Option(help: ArgumentHelp("Tasks this node takes part in at once, as initiator or participant: the server claims a task only when every node it runs on has a free slot (gang admission). Default 1024.", valueName: "n"))
    var capacity = 1024

    @Option(help: ArgumentHelp("Connections the participant endpoint holds open at once; one more is closed as it arrives. Default 1024.", valueName: "n"))
    var maxConnections = 1024

    @Option(help: ArgumentHelp("Seconds between lease renewals of held tasks; keep it well under the server's lease. Default 10.", valueName: "seconds"))
    var heartbeatInterval = 10.0

    @Option(help: ArgumentHelp("Seconds between readings of the cluster's signing keys: a retired key's grants are refused within this time. Default 60.", valueName: "seconds"))
    var keyRefreshInterval = 60.0

    @Option(help: ArgumentHelp("On SIGTERM, seconds in-flight tasks get to finish before they are left to lease expiry. Default 30.", valueName: "seconds"))
    var shutdownGrace = 30.0

    @OptionGroup var logging: LoggingOptions
    @OptionGroup var tracing: TracingOptions

    public func run() async throws {
        guard let node = setting(node, "TASKYARD_NODE") else { throw ValidationError("--node is required (or set TASKYARD_NODE)") }
        let address = try ListenAddress(setting(listen, "TASKYARD_AGENT_LISTEN", default: "127.0.0.1:7001")!, option: "--listen")
        guard concurrency > 0 else { throw ValidationError("--concurrency must be positive") }
        guard (1...100_000).contains(maxHandlerRuns) else { throw ValidationError("--max-handler-runs takes 1 to 100000 (got \(maxHandlerRuns))") }
        let pollWait = try checkedDuration(self.pollWait, "--poll-wait", allowZero: true, atMost: 60)
        let participantTimeout = try checkedDuration(self.participantTimeout, "--participant-timeout")
        let heartbeatInterval = try checkedDuration(self.heartbeatInterval, "--heartbeat-interval", atMost: 3600)
        let shutdownGrace = try checkedDuration(self.shutdownGrace, "--shutdown-grace", allowZero: true)
        var configuration = AgentConfiguration(server: serverOptions.url, cluster: clusterOption.id, node: node)
        // An agent never falls back to the dev admin token: it speaks with its node's token only.
        guard let token = try serverOptions.credentials.token(fallbackFile: nil) else {
            throw ValidationError("the agent needs its node's token: --token-file PATH or $TASKYARD_TOKEN (make one with taskyard token create --kind node)")
        }
        configuration.token = token
        configuration.caFile = serverOptions.caFile
        let (tlsFiles, plainHTTPWarning) = try tls.files(listeningOn: address)
        configuration.tls = tlsFiles
        configuration.handlerEnvironment = handlerEnv
        if let handlerUser {
            do { configuration.handlerUser = try HandlerUser(named: handlerUser) } catch { throw ValidationError("--handler-user: \(error)") }
        }
        configuration.listenHost = address.host
        configuration.listenPort = address.port
        configuration.endpoint = endpoint
        configuration.handlersDirectory = setting(handlers, "TASKYARD_HANDLERS").map { URL(fileURLWithPath: $0) }
        configuration.concurrency = concurrency
        configuration.pollWait = pollWait
        configuration.participantTimeout = participantTimeout
        configuration.maximumHandlerRuns = maxHandlerRuns
        guard (1...Int(Int32.max)).contains(capacity) else { throw ValidationError("--capacity takes 1 to 2147483647 (got \(capacity))") }
        configuration.capacity = capacity
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be positive") }
        configuration.maximumConnections = maxConnections
        configuration.heartbeatInterval = heartbeatInterval
        configuration.keyRefreshInterval = try checkedDuration(keyRefreshInterval, "--key-refresh-interval", atMost: 3600)
        configuration.shutdownGrace = shutdownGrace
        let logger = try logging.makeLogger("taskyard.agent")
        if let plainHTTPWarning { logger.warning("\(plainHTTPWarning)") }
        ProcessMemory.limitArenas()
        let exporter = try tracing.services(serviceName: "taskyard-agent")
        try await runUntilSignalled(exporter + (try NodeAgent(configuration: configuration, logger: logger).services), logger: logger)
    }
}
