import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardSecurity

/// The agent of one node (Kadalu's node agent): serves the participant endpoint, registers the node,
/// polls the server for the tasks assigned to it, fans each out to the task's participating nodes
/// concurrently, and reports `completed` when every participant succeeded, `failed` otherwise, with
/// every participant's outcome. Heartbeats renew the leases of the tasks it holds.
///
/// Two services, run side by side in the process's service group (`services`): the participant endpoint,
/// then the agent's work. On graceful shutdown, which goes in reverse order, the work stops polling, lets
/// in-flight fan-outs finish within `shutdownGrace` and leaves the rest to lease expiry without reporting
/// them — while the endpoint still serves other agents' fan-outs and this one's drain; then the endpoint stops.
public final class NodeAgent: Service, Sendable {
    public let configuration: AgentConfiguration
    let client: TaskyardClient
    let participant: ParticipantEndpoint
    let logger: Logger
    let held: HeldTasks
    let endpoints = EndpointCache()
    let reports: ReportSender
    let participants: ParticipantClient
    /// The participant endpoint this agent advertises, once it listens.
    let ownEndpoint = Mutex<NodeEndpoint?>(nil)
    /// The participant endpoint's HTTP server, a service of its own.
    private let endpointServer: any Service
    /// The port the endpoint listens on, announced once it does.
    private let listening: AsyncStream<Int>

    /// Throws when `caFile` cannot be read.
    public init(configuration: AgentConfiguration, handlers: HandlerRegistry? = nil, logger: Logger? = nil) throws {
        self.configuration = configuration
        let transport = try HTTPTransport.trusting(caFile: configuration.caFile)
        client = TaskyardClient(baseURL: configuration.server, token: configuration.token, transport: transport)
        participants = ParticipantClient(transport: transport, timeout: configuration.participantTimeout)
        // The configured handlers folder serves every type the Swift handlers do not, unless the
        // registry names a folder of its own.
        var registry = handlers ?? .builtins()
        if registry.directory == nil { registry.directory = configuration.handlersDirectory }
        registry.passedEnvironment += configuration.handlerEnvironment
        if let user = configuration.handlerUser { registry.handlerUser = user }
        let held = HeldTasks()
        self.held = held
        participant = ParticipantEndpoint(handlers: registry, node: configuration.node,
                                          gate: GrantGate(client: client, cluster: configuration.cluster, node: configuration.node),
                                          handlerTimeout: configuration.participantTimeout,
                                          maximumHandlerRuns: configuration.maximumHandlerRuns,
                                          maximumConnections: configuration.maximumConnections,
                                          scrapes: ScrapeGate(client: client, cluster: configuration.cluster, node: configuration.node),
                                          heldTasks: { held.count })
        var logger = logger ?? Logger(label: "taskyard.agent")
        logger[metadataKey: "node"] = "\(configuration.node)"
        logger[metadataKey: "cluster"] = "\(configuration.cluster)"
        self.logger = logger
        reports = ReportSender(client: client, cluster: configuration.cluster, node: configuration.node,
                               metrics: participant.metrics, logger: logger)
        let (listening, announce) = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.listening = listening
        endpointServer = try participant.application(host: configuration.listenHost, port: configuration.listenPort,
                                                     tls: configuration.tls, logger: logger) { port in
            announce.yield(port)
            announce.finish()
        }
    }

    /// The agent's services in the order a service group takes them: the participant endpoint, then this
    /// agent's work (which waits for the endpoint to listen before it registers the node).
    public var services: [any Service] { [endpointServer, self] }

    /// What this agent's participant endpoint has served: batches of calls, the calls they held, and
    /// calls that came alone (`POST …/tasks/{type}`).
    public var participantCalls: (batches: Int, batchedCalls: Int, singleCalls: Int) {
        participant.metrics.participantCalls
    }

    /// The agent's work: registers the node once the endpoint listens, then polls, fans out, reports and
    /// renews leases until graceful shutdown, and drains. Run it beside its endpoint (`services`).
    public func run() async throws {
        var ports = listening.makeAsyncIterator()
        // Nil: the endpoint stopped before it listened (its error ends the group), or the group is cancelled.
        guard let port = await ports.next() else { return }
        let advertised = configuration.endpoint
            ?? "\(configuration.tls == nil ? "http" : "https")://\(configuration.listenHost):\(port)"
        ownEndpoint.withLock { $0 = try? NodeEndpoint(parsing: advertised) }
        try await register(endpoint: advertised)
        do {
            try await participant.gate.refreshKeys()
        } catch {
            // Not fatal: the first participant call fetches them again.
            logger.warning("cannot fetch the cluster's signing keys yet", metadata: ["error": "\(error)"])
        }
        logger.info("agent ready", metadata: ["endpoint": "\(advertised)", "server": "\(configuration.server)"])
        // Everything the agent runs is a child of this group: heartbeats, the report sender, the poll
        // loop and one child per held task. Leaving it means all of it has ended.
        await withDiscardingTaskGroup { agent in
            // Heartbeats go on through the drain (the held tasks' leases must outlive it) and stop after.
            agent.addTask { await self.heartbeatLoop() }
            agent.addTask { await self.keyRefreshLoop() }
            // Reports go on through the drain too: a held task is released once its report is sent.
            agent.addTask { await self.reports.run() }
            // Participant calls go in batches per node while fan-outs (and their rollbacks) run.
            agent.addTask { await self.participants.batcher.run() }
            await withDiscardingTaskGroup { work in
                let (claims, claimed) = AsyncStream<ClaimedTaskObject>.makeStream()
                // On graceful shutdown the poll in flight is cancelled at once (it may be a long wait);
                // fan-outs in flight are not, and get the grace period in drain().
                work.addTask {
                    await withGracefulShutdownHandler {
                        await cancelWhenGracefulShutdown { await self.pollLoop(claiming: claimed) }
                    } onGracefulShutdown: {
                        self.held.stopPolling()
                    }
                    claimed.finish()
                }
                for await task in claims {
                    work.addTask { await self.run(held: task) }
                }
                await self.drain()
            }
            reports.finish()
            await reports.waitUntilDone()
            agent.cancelAll()
        }
    }

    // MARK: - Registration and polling

    private func register(endpoint: String) async throws {
        var delay = Duration.milliseconds(200)
        while true {
            do {
                _ = try await client.registerNode(cluster: configuration.cluster, node: configuration.node,
                                                  RegisterNodeRequest(endpoint: endpoint, labels: configuration.labels,
                                                                      capacity: configuration.capacity))
                return
            } catch let failure as TaskyardClient.Failure where failure.error?.error.code == .clusterNotFound {
                // Agents may start before anyone created their cluster (containers, scripts): wait for it.
                logger.warning("cluster does not exist yet; waiting (create it with `taskyard cluster create \(configuration.cluster)`)")
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            } catch let failure as TaskyardClient.Failure where failure.status < 500 {
                throw failure
            } catch {
                logger.warning("cannot register yet; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Polls while there are free slots; each claimed task is held here, then handed on to run.
    private func pollLoop(claiming claimed: AsyncStream<ClaimedTaskObject>.Continuation) async {
        var delay = Duration.milliseconds(200)
        while !held.isStopping, !Task.isCancelled {
            let free = held.free(limit: configuration.concurrency)
            if free <= 0 {
                await held.waitForSlot(limit: configuration.concurrency)
                continue
            }
            do {
                let asked = ContinuousClock.now
                let answer = try await client.poll(cluster: configuration.cluster, node: configuration.node,
                                                   wait: configuration.pollWait, limit: free)
                // An empty answer long before the wait ended means another poll of this node took over
                // (a second agent for the same node, misconfigured): back off rather than take turns with
                // it as fast as the network allows.
                let early = answer.tasks.isEmpty && answer.cancel.isEmpty && configuration.pollWait >= .seconds(1)
                    && ContinuousClock.now - asked < configuration.pollWait / 10
                if early {
                    logger.warning("poll answered empty at once; is another agent polling for this node?", metadata: ["in": "\(delay)"])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                } else {
                    delay = .milliseconds(200)
                }
                for task in answer.tasks {
                    held.add(task)
                    claimed.yield(task)
                }
                for id in answer.cancel { held.cancel(id, reason: .cancelRequested) }
            } catch {
                if held.isStopping || Task.isCancelled { break }
                logger.warning("poll failed; retrying", metadata: ["error": "\(error)", "in": "\(delay)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Waits up to the grace period for in-flight fan-outs, then abandons the rest to lease expiry. A
    /// cancelled agent (stopped hard, not gracefully) gets no grace.
    private func drain() async {
        guard held.count > 0 else { return }
        logger.info("finishing in-flight tasks", metadata: ["count": "\(held.count)"])
        if !Task.isCancelled, await held.waitUntilEmpty(within: configuration.shutdownGrace) { return }
        for id in held.ids { held.cancel(id, reason: .abandoned) }
        // Stopped fan-outs end at once; reports already on their way get a few seconds to reach the
        // server. Waited for apart from this task, which may be cancelled (a hard stop).
        _ = await Task.detached { [held] in await held.waitUntilEmpty(within: .seconds(10)) }.value
    }

    /// Renews the leases every `heartbeatInterval`, and reports progress within a second of a change.
    /// Once a burst of work is over, hands the memory it used back to the system.
    /// Reads the cluster's signing keys again every `keyRefreshInterval`, so that a retired key's grants
    /// are refused here within that time.
    private func keyRefreshLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.keyRefreshInterval)
            guard !Task.isCancelled else { return }
            do {
                try await participant.gate.refreshKeys()
            } catch {
                logger.warning("cannot read the cluster's signing keys", metadata: ["error": "\(error)"])
            }
        }
    }

    private func heartbeatLoop() async {
        let step = min(configuration.heartbeatInterval, .seconds(1))
        var last = ContinuousClock.now
        var busySinceTrim = false
        while !Task.isCancelled {
            try? await Task.sleep(for: step)
            // Handlers past the participant timeout are stopped, here and for other initiators alike; held
            // tasks past their `timeout_seconds` too.
            await participant.running.cancelOverdue(limit: configuration.participantTimeout)
            held.stopOverdue()
            if held.count > 0 {
                busySinceTrim = true
            } else if busySinceTrim {
                busySinceTrim = false
                ProcessMemory.returnFreedMemory()
            }
            guard ContinuousClock.now - last >= configuration.heartbeatInterval || held.takeProgressChange() else { continue }
            last = .now
            let tasks = held.snapshot
            guard !tasks.isEmpty else { continue }
            do {
                let answer: HeartbeatResponse
                do {
                    answer = try await client.heartbeat(cluster: configuration.cluster, node: configuration.node,
                                                        HeartbeatRequest(tasks: tasks))
                } catch let refused as TaskyardClient.Failure where refused.status == 422 {
                    // A progress the server will not take costs no task its lease: renew them without progress.
                    logger.warning("heartbeat refused; renewing the leases without progress", metadata: ["error": "\(refused)"])
                    answer = try await client.heartbeat(cluster: configuration.cluster, node: configuration.node,
                                                        HeartbeatRequest(tasks: tasks.map { HeldTask(id: $0.id, attempt: $0.attempt, lease: $0.lease) }))
                }
                for id in answer.lost { held.cancel(id, reason: .lost) }
                for id in answer.cancel { held.cancel(id, reason: .cancelRequested) }
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
