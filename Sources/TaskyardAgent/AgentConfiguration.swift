import Foundation
import TaskyardDomain
import TaskyardSecurity

/// How `taskyard agent` behaves. Every field has a flag in the CLI.
public struct AgentConfiguration: Sendable {
    /// The Taskyard server, e.g. `http://127.0.0.1:8080`.
    public var server: String
    public var cluster: String
    public var node: String
    /// Where the participant endpoint listens. Default 127.0.0.1:7001; port 0 picks a free one.
    public var listenHost = "127.0.0.1"
    public var listenPort = 7001
    /// The URL other agents use to reach this one; default `http://<listen host>:<port>`.
    public var endpoint: String?
    /// Folder of executable handlers (`DIR/<type>`); none by default.
    public var handlersDirectory: URL?
    /// Tasks this agent runs at once as initiator. Default 8.
    public var concurrency = 8
    /// How long a poll waits on the server for work. Default 20 s.
    public var pollWait: Duration = .seconds(20)
    /// Longest one participant call may take. Default 300 s: longer than most handlers, short enough
    /// to notice a hung node well before a task's lease runs out many times over.
    public var participantTimeout: Duration = .seconds(300)
    /// Handler runs at once on this node, as participant of any task (its own fan-outs' included); the
    /// calls past it wait their turn. Default 1024: a bound on what peers can set going here, far above
    /// what agents at their default `concurrency` ask of a node.
    public var maximumHandlerRuns = 1024
    /// Connections the participant endpoint holds open at once; one more is closed as it arrives. Default
    /// 1024 (each initiator keeps a few).
    public var maximumConnections = 1024
    /// How often leases of held tasks are renewed. Default 10 s, a third of the server's 30 s lease.
    public var heartbeatInterval: Duration = .seconds(10)
    /// How often the cluster's signing keys are read again: a retired key's grants are refused here within
    /// this time. Default 60 s.
    public var keyRefreshInterval: Duration = .seconds(60)
    /// On SIGTERM, how long in-flight fan-outs may take to finish; the rest are left to lease expiry.
    /// Default 30 s.
    public var shutdownGrace: Duration = .seconds(30)
    /// The node token this agent authenticates with (`--token`, `--token-file`, `TASKYARD_TOKEN`).
    public var token: String?
    /// PEM file of the CAs to trust for HTTPS, to the server and to other agents; nil: the system's.
    public var caFile: String?
    /// Certificate and key for the participant endpoint; nil serves plain HTTP.
    public var tls: TLSFiles?
    /// Names of this agent's environment variables that executable handlers also get (`--handler-env`);
    /// they get no other of its variables.
    public var handlerEnvironment: [String] = []
    /// The user executable handlers run as (`--handler-user`); nil: the agent's own.
    public var handlerUser: HandlerUser?
    public var labels: JSONValue = [:]
    /// Tasks this node may take part in at once, as initiator or participant (`--capacity`): the server claims
    /// a task only when each of its nodes has a free slot.
    public var capacity = Node.defaultCapacity

    public init(server: String, cluster: String, node: String) {
        self.server = server
        self.cluster = cluster
        self.node = node
    }
}
