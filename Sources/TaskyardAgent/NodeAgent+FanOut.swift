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
import TaskyardTracing
import Tracing

/// One held task: its fan-out to the participants, their progress, rollback and cancel.
extension NodeAgent {
    // MARK: - One task

    /// One held task, from fan-out to report — when tracing, in a span for the attempt, a child of the
    /// server's claim span (the claim carries its context), with the report's span under it.
    func run(held task: ClaimedTaskObject) async {
        guard TraceContext.isEnabled else { return await attempt(task, reportSpan: nil) }
        await withSpan("taskyard.attempt", context: TraceContext.context(parent: task.traceparent ?? task.task.traceparent),
                       ofKind: .consumer) { span in
            span.attributes["taskyard.task_id"] = Int(task.task.id)
            span.attributes["taskyard.attempt"] = task.task.attempt
            span.attributes["taskyard.type"] = task.task.type
            span.attributes["taskyard.node"] = configuration.node
            await attempt(task, reportSpan: {
                let report = startSpan("taskyard.report", ofKind: .producer)
                report.attributes["taskyard.task_id"] = Int(task.task.id)
                report.attributes["taskyard.attempt"] = task.task.attempt
                report.attributes["taskyard.node"] = self.configuration.node
                return report
            })
        }
    }

    private func attempt(_ task: ClaimedTaskObject, reportSpan: (() -> any Span)?) async {
        let (report, notNeeded) = await fanOut(task)
        // Participants the policy no longer needs are told to stop beside the report, not before it: one
        // that cannot be reached would hold the task's end for a connect timeout.
        async let toldToStop: Void = notNeeded()
        // Built only for a line the log level lets through (the metadata is an autoclosure): not per task at info.
        if report.state == .failed {
            logger.warning("task attempt failed", metadata: Self.logMetadata(of: task.task, ["state": "failed", "error": "\(report.error ?? "")"]))
        } else {
            logger.debug("task attempt ended", metadata: Self.logMetadata(of: task.task, ["state": "\(report.state.rawValue)"]))
        }
        if let reason = held.cancellation(of: task.task.id), reason == .lost || reason == .abandoned {
            logger.info("not reporting", metadata: Self.logMetadata(of: task.task, ["reason": "\(reason)"]))
            held.remove(task.task.id)
        } else {
            // The task stays held (its lease renewed) until the server has the report, but the next claim need
            // not wait for that round trip.
            held.markReporting(task.task.id)
            let span = reportSpan?()
            reports.send(report, for: task.task.id, traceparent: span.flatMap { TraceContext.traceparent(of: $0.context) }) {
                span?.end()
                self.held.remove(task.task.id)
            }
        }
        await toldToStop
    }

    /// The attempt's report, and the telling of the participants stopped as not needed to stop (to run beside
    /// the report).
    func fanOut(_ claimed: ClaimedTaskObject) async -> (TaskReport, notNeeded: @Sendable () async -> Void) {
        let task = claimed.task
        // The agent's own node needs no endpoint: its part runs in-process.
        let others = task.participatingNodes.filter { $0 != configuration.node }
        let registered = others.isEmpty ? [:] : await self.endpoints.resolve(others, cluster: configuration.cluster, client: client)
        var resolved = registered.compactMapValues { try? NodeEndpoint(parsing: $0) }
        // Rollbacks, cancels and progress reach this node's handlers through its own endpoint (rare paths).
        resolved[configuration.node] = ownEndpoint.withLock { $0 } ?? resolved[configuration.node]
        let endpoints = resolved
        held.setProgress(task.id, TaskProgress(completed: 0, total: Double(task.participatingNodes.count), units: "participants"),
                         announce: false)
        let policy = (try? CompletionPolicy(json: task.completeWhen)) ?? .all
        let plan = AttemptPlan(claimed)
        let (outcomes, notNeeded) = await callAllUnlessStopped(claimed, policy: policy, plan: plan, endpoints: endpoints)
        let decision = FanOutDecision(outcomes: plan.carried + outcomes, stop: held.cancellation(of: task.id), policy: policy,
                                      carried: Set(plan.carried.map(\.node)))
        let rolledBack = decision.needsRollback ? await rollBack(claimed, outcomes: decision.outcomes, endpoints: endpoints) : nil
        return (decision.report(attempt: task.attempt, lease: claimed.lease, afterRollback: rolledBack),
                { await self.notifyCancel(claimed, nodes: notNeeded, endpoints: endpoints) })
    }

    /// What a log line about a task attempt names: the task, its type and attempt, and — when its client
    /// sent a W3C `traceparent` — the trace id, so a log pipeline can join the line to the trace. Never its
    /// payload or lease.
    static func logMetadata(of task: TaskObject, _ more: Logger.Metadata = [:]) -> Logger.Metadata {
        var metadata: Logger.Metadata = more.merging(["task": "\(task.id)", "type": "\(task.type)", "attempt": "\(task.attempt)"]) { $1 }
        if let traceparent = task.traceparent {
            let fields = traceparent.split(separator: "-")
            if fields.count >= 4, fields[1].count == 32 { metadata["trace_id"] = "\(fields[1])" }
        }
        return metadata
    }

    /// Who an attempt runs and what it carries forward, read once from its claim.
    struct AttemptPlan: Sendable {
        /// The participants this attempt runs: those the claim carries a grant for (a re-driven attempt runs
        /// only the ones without a completed outcome), in the order of the task's participating nodes.
        let running: [String]
        /// The completed outcomes of earlier attempts of the participants it does not run.
        let carried: [ParticipantOutcome]

        init(_ claimed: ClaimedTaskObject) {
            let granted = claimed.task.participatingNodes.filter { claimed.grants[$0] != nil }
            let running = granted.isEmpty ? claimed.task.participatingNodes : granted
            let runningSet = Set(running)
            self.running = running
            carried = claimed.task.participants.compactMap { participant in
                guard !runningSet.contains(participant.node), participant.state == .completed else { return nil }
                return ParticipantOutcome(node: participant.node, state: .completed, result: participant.result,
                                          startedAt: participant.startedAt, finishedAt: participant.finishedAt)
            }
        }
    }

    /// What ends one child of a fan-out's race.
    private enum RaceEvent: Sendable {
        case called(Calls)
        case stopped
        case progressEnded
    }

    /// The participant calls, raced against the task's stop signal in one task group, with the participants'
    /// progress followed beside them. Stopped (a cancel request, a lost lease, `timeout_seconds` run out as
    /// the agent's one-second sweep finds, the agent's shutdown), the calls are cancelled and every
    /// participant is told to stop at once, all together; the outcomes are then the calls' as they ended.
    /// Settled by the policy before every participant answered: the outcomes, and the ones still running, to
    /// be told to stop.
    private func callAllUnlessStopped(_ claimed: ClaimedTaskObject, policy: CompletionPolicy, plan: AttemptPlan,
                                      endpoints: [String: NodeEndpoint]) async -> ([ParticipantOutcome], notNeeded: [String]) {
        await withTaskGroup(of: RaceEvent.self) { race in
            race.addTask { .called(await self.callAll(claimed, policy: policy, plan: plan, endpoints: endpoints)) }
            race.addTask { await self.held.stopped(claimed.task.id); return .stopped }
            race.addTask { await self.followParticipantProgress(claimed, endpoints: endpoints); return .progressEnded }
            var outcomes: [ParticipantOutcome] = []
            var notNeeded: [String] = []
            while let event = await race.next() {
                switch event {
                case .called(let calls):
                    outcomes = calls.outcomes
                    notNeeded = calls.notNeeded
                    race.cancelAll()
                case .stopped where outcomes.isEmpty && held.cancellation(of: claimed.task.id) != nil:
                    race.cancelAll()
                    await notifyCancel(claimed, nodes: plan.running, endpoints: endpoints)
                case .stopped, .progressEnded:
                    continue
                }
            }
            return (outcomes, notNeeded)
        }
    }

    /// The participants' outcomes, and the nodes stopped because the policy was settled without them.
    struct Calls: Sendable {
        var outcomes: [ParticipantOutcome]
        var notNeeded: [String]
    }

    /// Every participant's call at once; outcomes in the order of the task's participating nodes. The
    /// moment the answers in meet `policy` (`any`, `quorum`, `at_least` before every participant answered),
    /// the calls still running are cancelled and their participants recorded `cancelled`, "not needed".
    /// A policy out of reach stops nobody: a participant stopped midway leaves work that no rollback undoes
    /// (a rollback runs only where a participant completed), so the others finish, and every success is
    /// rolled back where the type declares how.
    func callAll(_ claimed: ClaimedTaskObject, policy: CompletionPolicy, plan: AttemptPlan,
                 endpoints: [String: NodeEndpoint]) async -> Calls {
        let task = claimed.task
        let nodes = plan.running
        let total = task.participatingNodes.count
        return await withTaskGroup(of: (Int, ParticipantOutcome).self) { group in
            for (index, node) in nodes.enumerated() {
                group.addTask { (index, await self.call(node, at: endpoints[node], for: claimed)) }
            }
            var outcomes = [ParticipantOutcome?](repeating: nil, count: nodes.count)
            // Answers so far, the carried-forward successes counted in.
            var done = plan.carried.count
            var succeeded = plan.carried.count
            var notNeeded: [Int] = []
            for await (index, outcome) in group {
                // A participant stopped unneeded that completed anyway keeps its outcome (and is rolled back
                // with the others where the attempt fails).
                if notNeeded.contains(index), outcome.state != .completed {
                    outcomes[index] = ParticipantOutcome(node: outcome.node, state: .cancelled, error: FanOutDecision.notNeeded,
                                                         startedAt: outcome.startedAt, finishedAt: outcome.finishedAt)
                    continue
                }
                outcomes[index] = outcome
                done += 1
                if outcome.state == .completed { succeeded += 1 }
                self.held.setParticipantsDone(task.id, done)
                // The last one needs no early heartbeat: the report follows at once.
                self.held.setProgress(task.id, TaskProgress(completed: Double(done), total: Double(total), units: "participants"),
                                      announce: done < total)
                if done < total, notNeeded.isEmpty, policy.verdict(succeeded: succeeded, failed: done - succeeded, of: total) == .met {
                    notNeeded = outcomes.indices.filter { outcomes[$0] == nil }
                    group.cancelAll()
                }
            }
            return Calls(outcomes: outcomes.compactMap { $0 }, notNeeded: notNeeded.map { nodes[$0] })
        }
    }

    /// One participant call: 2xx with a participant result is success; anything else, or no answer, is failure.
    func call(_ node: String, at endpoint: NodeEndpoint?, for claimed: ClaimedTaskObject) async -> ParticipantOutcome {
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
                                          initiator: configuration.node, payload: task.payload,
                                          traceparent: TraceContext.current ?? task.traceparent)
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
    func followParticipantProgress(_ claimed: ClaimedTaskObject, endpoints: [String: NodeEndpoint]) async {
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
            held.setProgress(task.id, TaskProgress(completed: min(total, Double(done) + fractions), total: total, units: "participants"))
        }
    }

    /// How long a fan-out runs before its participants are asked how far they are.
    static let progressDelay: Duration = .seconds(2)

    /// Calls the rollback of the task's type on each participant that succeeded, with the rollback grants
    /// the server signs for them (from then on the attempt can only be reported failed). A participant
    /// whose type declares no rollback answers 404 and keeps its outcome as it was; the others' outcomes
    /// get their `rollback`: its state and result or error.
    func rollBack(_ claimed: ClaimedTaskObject, outcomes: [ParticipantOutcome],
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

    /// Tells `nodes` to stop their part of the task, all at once.
    func notifyCancel(_ claimed: ClaimedTaskObject, nodes: [String], endpoints: [String: NodeEndpoint]) async {
        await withTaskGroup(of: Void.self) { group in
            for node in nodes {
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
