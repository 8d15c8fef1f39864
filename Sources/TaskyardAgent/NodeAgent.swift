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
/// A `Service`: on graceful shutdown it stops polling, lets in-flight fan-outs finish within
/// `shutdownGrace`, and leaves the rest to lease expiry without reporting them.
public final class NodeAgent: Service, Sendable {
    public let configuration: AgentConfiguration
    private let client: TaskyardClient
    private let participant: ParticipantEndpoint
    private let logger: Logger
    private let held: HeldTasks
    private let endpoints = EndpointCache()
    private let reports: ReportSender
    private let participants: ParticipantClient
    /// The participant endpoint this agent advertises, once it listens.
    private let ownEndpoint = Mutex<NodeEndpoint?>(nil)

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
        self.logger = logger
        reports = ReportSender(client: client, cluster: configuration.cluster, node: configuration.node,
                               metrics: participant.metrics, logger: logger)
    }

    /// What this agent's participant endpoint has served: batches of calls, the calls they held, and
    /// calls that came alone (`POST …/tasks/{type}`).
    public var participantCalls: (batches: Int, batchedCalls: Int, singleCalls: Int) {
        participant.metrics.participantCalls
    }

    public func run() async throws {
        let (listening, announce) = AsyncStream<Int>.makeStream()
        let app = try participant.application(host: configuration.listenHost, port: configuration.listenPort,
                                              tls: configuration.tls, logger: logger) { port in
            announce.yield(port)
        }
        // The participant endpoint must outlive this service's graceful shutdown: other agents' fan-outs
        // and this agent's own drain still call it. It runs apart (detached, so that it does not inherit
        // the shutdown) and is shut down gracefully once the drain is over.
        let endpointGroup = ServiceGroup(services: [app], logger: logger)
        let endpoint = Task.detached {
            defer { announce.finish() }
            try await endpointGroup.run()
        }
        try await withTaskCancellationHandler {
            var ports = listening.makeAsyncIterator()
            guard let port = await ports.next() else {
                try await endpoint.value
                return
            }
            let advertised = configuration.endpoint
                ?? "\(configuration.tls == nil ? "http" : "https")://\(configuration.listenHost):\(port)"
            ownEndpoint.withLock { $0 = try? NodeEndpoint(parsing: advertised) }
            do {
                try await register(endpoint: advertised)
            } catch {
                await endpointGroup.triggerGracefulShutdown()
                throw error
            }
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
            await endpointGroup.triggerGracefulShutdown()
            try await endpoint.value
        } onCancel: {
            // Cancelling the endpoint's serve loop outright can drop a connection it has accepted but not yet
            // served, which traps in swift-nio ("Deinited NIOAsyncWriter without calling finish()",
            // apple/swift-nio#3481). Its listener is closed first; what still runs a second later is cancelled.
            Task {
                await endpointGroup.triggerGracefulShutdown()
                try? await Task.sleep(for: .seconds(1))
                endpoint.cancel()
            }
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
                                                   wait: configuration.pollWaitSeconds, limit: free)
                // An empty answer long before the wait ended means another poll of this node took over
                // (a second agent for the same node, misconfigured): back off rather than take turns with
                // it as fast as the network allows.
                let early = answer.tasks.isEmpty && answer.cancel.isEmpty && configuration.pollWaitSeconds >= 1
                    && ContinuousClock.now - asked < .seconds(configuration.pollWaitSeconds / 10)
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
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while held.count > 0, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for id in held.ids { held.cancel(id, reason: .abandoned) }
        // Stopped fan-outs end at once; reports already on their way get a few seconds to reach the
        // server. Waited for apart from this task, whose cancellation would turn each sleep into a spin.
        let stopDeadline = ContinuousClock.now + .seconds(10)
        while held.count > 0, ContinuousClock.now < stopDeadline {
            await Task.detached { try? await Task.sleep(for: .milliseconds(20)) }.value
        }
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
            // Handlers past the participant timeout are stopped, here and for other initiators alike.
            await participant.running.cancelOverdue(limit: configuration.participantTimeout)
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
                                                        HeartbeatRequest(tasks: tasks.map { HeartbeatRequest.HeldTask(id: $0.id, attempt: $0.attempt, lease: $0.lease) }))
                }
                for id in answer.lost { held.cancel(id, reason: .lost) }
                for id in answer.cancel { held.cancel(id, reason: .cancelRequested) }
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: - One task

    /// One held task, from fan-out to report.
    private func run(held task: ClaimedTaskObject) async {
        let report = await fanOut(task)
        if let reason = held.cancellation(of: task.task.id), reason == .lost || reason == .abandoned {
            logger.info("not reporting", metadata: ["task": "\(task.task.id)", "reason": "\(reason)"])
            held.remove(task.task.id)
            return
        }
        // The task stays held (its lease renewed) until the server has the report, but the next claim need
        // not wait for that round trip.
        held.markReporting(task.task.id)
        reports.send(report, for: task.task.id) { self.held.remove(task.task.id) }
    }

    private func fanOut(_ claimed: ClaimedTaskObject) async -> TaskReport {
        let task = claimed.task
        // The agent's own node needs no endpoint: its part runs in-process.
        let others = task.participatingNodes.filter { $0 != configuration.node }
        let registered = others.isEmpty ? [:] : await self.endpoints.resolve(others, cluster: configuration.cluster, client: client)
        var resolved = registered.compactMapValues { try? NodeEndpoint(parsing: $0) }
        // Rollbacks, cancels and progress reach this node's handlers through its own endpoint (rare paths).
        resolved[configuration.node] = ownEndpoint.withLock { $0 } ?? resolved[configuration.node]
        let endpoints = resolved
        // Only the participant calls are cancelled when the task is stopped; telling the participants and
        // reporting come after, and must not be cancelled with them.
        let calls = Task { () -> [ParticipantOutcome] in
            // The moment the task is stopped (a cancel request, a lost lease), every participant is told
            // to stop, all at once, rather than after the calls come back.
            await withTaskCancellationHandler {
                await self.callAll(claimed, endpoints: endpoints)
            } onCancel: {
                Task { await self.notifyCancel(claimed, endpoints: endpoints) }
            }
        }
        held.setProgress(task.id, .init(completed: 0, total: Double(task.participatingNodes.count), units: "participants"),
                         announce: false)
        held.attach(task.id, calls: calls)
        let watcher = Task { await self.followParticipantProgress(claimed, endpoints: endpoints) }
        // `timeout_seconds` bounds the attempt: past it, the participants are stopped as for a cancel and
        // the attempt is reported failed (and retried while attempts remain).
        let timer = task.timeoutSeconds.map { seconds in
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                if !Task.isCancelled { self.held.cancel(task.id, reason: .timedOut(seconds: seconds)) }
            }
        }
        let outcomes = await calls.value
        watcher.cancel()
        timer?.cancel()
        let decision = FanOutDecision(outcomes: outcomes, stop: held.cancellation(of: task.id))
        let rolledBack = decision.needsRollback ? await rollBack(claimed, outcomes: decision.outcomes, endpoints: endpoints) : nil
        return decision.report(attempt: task.attempt, lease: claimed.lease, afterRollback: rolledBack)
    }

    /// Every participant's call at once; outcomes in the order of the task's participating nodes.
    private func callAll(_ claimed: ClaimedTaskObject, endpoints: [String: NodeEndpoint]) async -> [ParticipantOutcome] {
        let task = claimed.task
        return await withTaskGroup(of: (Int, ParticipantOutcome).self) { group in
            for (index, node) in task.participatingNodes.enumerated() {
                group.addTask { (index, await self.call(node, at: endpoints[node], for: claimed)) }
            }
            var outcomes = [ParticipantOutcome?](repeating: nil, count: task.participatingNodes.count)
            var done = 0
            for await (index, outcome) in group {
                outcomes[index] = outcome
                done += 1
                self.held.setParticipantsDone(task.id, done)
                // The last one needs no early heartbeat: the report follows at once.
                self.held.setProgress(task.id, .init(completed: Double(done), total: Double(outcomes.count), units: "participants"),
                                      announce: done < outcomes.count)
            }
            return outcomes.compactMap { $0 }
        }
    }

    /// One participant call: 2xx with a participant result is success; anything else, or no answer, is failure.
    private func call(_ node: String, at endpoint: NodeEndpoint?, for claimed: ClaimedTaskObject) async -> ParticipantOutcome {
        let task = claimed.task
        let started = Date()
        func outcome(_ state: ReportedState, result: RawJSON? = nil, error: String? = nil) -> ParticipantOutcome {
            ParticipantOutcome(node: node, state: state, result: result, error: error, startedAt: started, finishedAt: Date())
        }
        if Task.isCancelled { return outcome(.cancelled, error: "stopped") }
        if node == configuration.node {
            // This node's own part runs in-process: the same handler the endpoint would run, without
            // an HTTP round trip to itself (nor a grant to check: the claim came from the server itself).
            // Stopping the task stops the handler, as a cancel would.
            let body = ParticipantRequest(taskID: task.id, clusterID: task.clusterID, attempt: task.attempt,
                                          initiator: configuration.node, payload: task.payload, traceparent: task.traceparent)
            // Recorded as this node's own grant's run, so that the grant replayed to the endpoint runs
            // nothing (read from the claim, not from the grant: reading grants was a tenth of a busy agent).
            let callTime = min(configuration.participantTimeout, task.timeoutSeconds.map { Duration.seconds($0) } ?? configuration.participantTimeout)
            let use = RunLedger.Use(ownPartOf: task.id, attempt: task.attempt, leaseExpiresAt: task.leaseExpiresAt ?? Date(),
                                    callTime: callTime)
            // Once stopped, the outcome is "stopped" at once: the handler gets its signals and grace period
            // in the background, and the report does not wait for it.
            let work = Task { await participant.perform(type: task.type, body, once: use) }
            let answer = await firstOf(work) {
                Task { await self.participant.running.cancel(taskID: task.id) }
            }
            switch answer {
            case .completed(let result)?: return outcome(.completed, result: result)
            case .failed(_, _, let message)?: return outcome(.failed, error: message)
            case nil: return outcome(.cancelled, error: "stopped")
            }
        }
        guard let endpoint else { return outcome(.failed, error: "node \(node) has no valid registered endpoint") }
        do {
            switch try await participants.run(claimed, on: node, at: endpoint, initiator: configuration.node) {
            case .completed(let result): return outcome(.completed, result: result)
            case .failed(let reason): return outcome(.failed, error: reason)
            case .noRollback: return outcome(.failed, error: "node \(node) answered as for a rollback")
            }
        } catch {
            return outcome(.cancelled, error: "stopped")
        }
    }

    /// While the fan-out runs, asks each participant how far its handler is (handlers that report
    /// progress), and reports the task's progress as participants done, counting a running participant
    /// by the fraction its handler reported. Only for a fan-out still running after `progressDelay`: most
    /// end sooner, and asking every participant of every held task each second was, under load, more
    /// requests than the fan-outs' own calls — work that grew the longer tasks waited, and made them wait.
    private func followParticipantProgress(_ claimed: ClaimedTaskObject, endpoints: [String: NodeEndpoint]) async {
        let task = claimed.task
        let total = Double(task.participatingNodes.count)
        try? await Task.sleep(for: Self.progressDelay - .seconds(1))
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            if Task.isCancelled { return }
            var fractions = 0.0
            var reported = false
            for node in task.participatingNodes {
                guard let endpoint = endpoints[node], let progress = await participants.progress(of: claimed, on: node, at: endpoint),
                      let of = progress.total, of > 0
                else { continue }
                // A participant's word is clamped to its share: a negative or overfull answer from one peer
                // must not make this agent's heartbeat one the server refuses (every held lease with it).
                fractions += min(max(progress.completed / of, 0), 1)
                reported = true
            }
            guard reported, let done = held.participantsDone(of: task.id) else { continue }
            // Participants that finished count whole; the running ones by their handlers' fractions.
            held.setProgress(task.id, .init(completed: min(total, Double(done) + fractions), total: total, units: "participants"))
        }
    }

    /// How long a fan-out runs before its participants are asked how far they are.
    static let progressDelay: Duration = .seconds(2)

    /// Calls the rollback of the task's type on each participant that succeeded, with the rollback grants
    /// the server signs for them (from then on the attempt can only be reported failed). A participant
    /// whose type declares no rollback answers 404 and keeps its outcome as it was; the others' outcomes
    /// get their `rollback`: its state and result or error.
    private func rollBack(_ claimed: ClaimedTaskObject, outcomes: [ParticipantOutcome],
                          endpoints: [String: NodeEndpoint]) async -> [ParticipantOutcome] {
        let undo = outcomes.indices.filter { outcomes[$0].state == .completed && endpoints[outcomes[$0].node] != nil }
        guard !undo.isEmpty else { return outcomes }
        var updated = outcomes
        let grants: [String: String]
        do {
            grants = try await client.rollbackGrants(
                cluster: configuration.cluster, node: configuration.node, taskID: claimed.task.id,
                RollbackGrantsRequest(attempt: claimed.task.attempt, lease: claimed.lease, nodes: undo.map { outcomes[$0].node }))
        } catch {
            let reason = "no rollback grant from the server: " + ParticipantClient.sanitized(String(describing: error))
            for index in undo { updated[index].rollback = ParticipantRollback(state: .failed, error: reason) }
            return updated
        }
        return await withTaskGroup(of: (Int, ParticipantOutcome).self) { group in
            for index in undo {
                let outcome = outcomes[index]
                guard let endpoint = endpoints[outcome.node] else { continue }
                group.addTask {
                    var updated = outcome
                    switch try? await self.participants.run(claimed, on: outcome.node, at: endpoint, initiator: self.configuration.node,
                                                            rollbackGrant: grants[outcome.node] ?? "") {
                    case .noRollback?:
                        return (index, outcome)
                    case .completed(let result)?:
                        updated.rollback = ParticipantRollback(state: .completed, result: result?.value ?? .null)
                    case .failed(let reason)?:
                        updated.rollback = ParticipantRollback(state: .failed, error: reason)
                    case nil:
                        updated.rollback = ParticipantRollback(state: .failed, error: "stopped")
                    }
                    return (index, updated)
                }
            }
            for await (index, outcome) in group { updated[index] = outcome }
            return updated
        }
    }

    private func notifyCancel(_ claimed: ClaimedTaskObject, endpoints: [String: NodeEndpoint]) async {
        await withTaskGroup(of: Void.self) { group in
            for node in claimed.task.participatingNodes {
                guard let endpoint = endpoints[node] else { continue }
                group.addTask { await self.participants.cancel(claimed, on: node, at: endpoint) }
            }
        }
    }
}

/// The value of `work`, or nil as soon as the calling task is cancelled (`onCancel` runs then), whichever
/// comes first: a caller that is stopped does not wait for work that is slow to stop.
func firstOf<T: Sendable>(_ work: Task<T, Never>, onCancel: @escaping @Sendable () -> Void) async -> T? {
    let waiter = OnceContinuation<T?>()
    return await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            waiter.set(continuation)
            if Task.isCancelled { waiter.resume(nil) }
            Task { waiter.resume(await work.value) }
        }
    } onCancel: {
        onCancel()
        waiter.resume(nil)
    }
}

/// A continuation resumed by whichever of several parties comes first; the others find it gone.
final class OnceContinuation<T: Sendable>: Sendable {
    private enum State {
        case waitingForContinuation
        case waiting(CheckedContinuation<T, Never>)
        /// Resumed before the continuation was set: delivered when it is.
        case early(T)
        case done
    }
    private let state = Mutex(State.waitingForContinuation)

    func set(_ continuation: CheckedContinuation<T, Never>) {
        let early: T? = state.withLock { state in
            switch state {
            case .waitingForContinuation:
                state = .waiting(continuation)
                return nil
            case .early(let value):
                state = .done
                return value
            case .waiting, .done:
                return nil
            }
        }
        if let early { continuation.resume(returning: early) }
    }

    func resume(_ value: T) {
        let waiting: CheckedContinuation<T, Never>? = state.withLock { state in
            switch state {
            case .waitingForContinuation:
                state = .early(value)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .early, .done:
                return nil
            }
        }
        waiting?.resume(returning: value)
    }
}
