import Foundation
import Hummingbird
import ServiceLifecycle
import TaskyardAPI
import TaskyardDomain
import TaskyardTracing
import Tracing

extension APIRoutes {
    /// Claims up to `limit` tasks for the node. With `wait`, an empty answer is held back until a
    /// notification says the node has work (a submit, a retry, a lost lease, a cancel request), or the
    /// wait ends; a re-check every `pollRecheckInterval` covers a lost notification and delayed tasks
    /// coming due. Each look at the database is one statement, which also records the node's heartbeat.
    func poll(_ request: Request, _ context: TaskyardRequestContext) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let limit = try request.queryInt("limit", in: 1...1000) ?? 16
        let wait = try request.queryDouble("wait", in: 0...configuration.maximumPollWait.inSeconds) ?? 0
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(wait)
        let topic = Wakeups.Topic.work(cluster: cluster, node: node)
        let signer = try await grants.signer(cluster: cluster)
        let seat = wakeups.takePollSeat(topic)
        defer { wakeups.leavePollSeat(topic, seat) }
        let watcher = wait > 0 ? await context.clientWatcher() : nil
        // The first look records the node's heartbeat; re-checks while waiting do not write it again.
        var first = true
        var slotRecheck = configuration.slotRecheckInterval
        while true {
            let ticket = wakeups.register(topic)
            // A newer poll of this node took over, or the client has gone: answer empty, claiming nothing
            // for a client that left.
            guard first || (wakeups.holdsPollSeat(topic, seat) && watcher?.clientIsGone != true) else {
                wakeups.forget(ticket)
                return try jsonResponse(PollResponse(tasks: [], cancel: []))
            }
            let outcome: PollOutcome
            let lookedAt = TraceInstant.now
            do {
                outcome = try await store.queue.poll(cluster: cluster, node: node, limit: limit, lease: configuration.lease,
                                               recordHeartbeat: first)
            } catch {
                wakeups.forget(ticket)
                throw error
            }
            first = false
            // Claimed while the client went away: nobody will get these, so they go back now, not after
            // their leases.
            if watcher?.clientIsGone == true, !outcome.tasks.isEmpty {
                wakeups.forget(ticket)
                try await store.queue.releaseUndelivered(outcome.tasks, cluster: cluster, node: node)
                return try jsonResponse(PollResponse(tasks: [], cancel: []))
            }
            // A server shutting down answers waiting polls now rather than holding its exit for them.
            if !outcome.tasks.isEmpty || !outcome.cancel.isEmpty || clock.now >= deadline || Task.isCancelled
                || Task.isShuttingDownGracefully {
                wakeups.forget(ticket)
                if !outcome.tasks.isEmpty { wakeups.tellWatchers(.work(cluster: cluster, node: node)) }
                let signed = try GrantIssuer.grants(for: outcome.tasks, signer: signer, validFor: grantLifetime)
                let tasks = zip(outcome.tasks, signed).map { claim, grants in
                    var claimed = ClaimedTaskObject(task: TaskObject(claim.task), lease: claim.lease, grants: grants)
                    claimed.traceparent = Self.traceClaim(claim.task, node: node, at: lookedAt)
                    return claimed
                }
                return try jsonResponse(PollResponse(tasks: tasks, cancel: outcome.cancel))
            }
            // A task waiting for slots is not announced when they come free (the report that frees them does
            // not know who waits): look again soon, then less often while it keeps waiting.
            var recheck = configuration.pollRecheckInterval
            if outcome.waiting {
                recheck = min(recheck, slotRecheck)
                slotRecheck = min(slotRecheck * 2, configuration.pollRecheckInterval)
            }
            await wakeups.wait(ticket, timeout: min(recheck, deadline - clock.now))
        }
    }

    /// The attempt's trace begins at its claim: a span per claimed task, a child of the span its client
    /// submitted it under (the top of a trace of its own when there was none), whose context the claim
    /// carries to the agent. Nil, and nothing made, while tracing is off.
    static func traceClaim(_ task: TaskRecord, node: String, at started: TraceInstant) -> String? {
        guard TraceContext.isEnabled else { return nil }
        let span = startSpan("taskyard.claim", at: started, context: TraceContext.context(parent: task.traceparent), ofKind: .server)
        span.attributes["taskyard.cluster"] = task.clusterID
        span.attributes["taskyard.task_id"] = Int(task.id)
        span.attributes["taskyard.attempt"] = task.attempt
        span.attributes["taskyard.node"] = node
        span.attributes["taskyard.type"] = task.type
        defer { span.end() }
        return TraceContext.traceparent(of: span.context)
    }

    /// A span per report item that names the agent's report span: a child of it, from the request's start to
    /// the statement's end.
    static func traceReports(_ items: [(taskID: Int64, attempt: Int, traceparent: String?)], cluster: String, node: String,
                             from started: TraceInstant) {
        guard TraceContext.isEnabled else { return }
        for item in items {
            guard let traceparent = item.traceparent else { continue }
            let span = startSpan("taskyard.report", at: started, context: TraceContext.context(parent: traceparent), ofKind: .server)
            span.attributes["taskyard.cluster"] = cluster
            span.attributes["taskyard.task_id"] = Int(item.taskID)
            span.attributes["taskyard.attempt"] = item.attempt
            span.attributes["taskyard.node"] = node
            span.end()
        }
    }

    /// A run grant lasts as long as its claim's lease (the type's, else the default), plus the longest a
    /// participant call may run: the participants' timeout, or the task's own when that is shorter.
    private func grantLifetime(_ task: TaskRecord) -> Duration {
        (store.configuration.leaseByType[task.type] ?? configuration.lease) + participantCallTime(task)
    }

    private func participantCallTime(_ task: TaskRecord) -> Duration {
        min(configuration.participantTimeout, task.timeoutSeconds.map { .seconds($0) } ?? configuration.participantTimeout)
    }

    /// Rollback grants for the named participants of an attempt the node holds; from now on that attempt
    /// can only be reported failed or cancelled. Each lives as long as one participant call.
    func rollbackGrants(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let id = try context.taskID(cluster: cluster)
        let body = try await decode(RollbackGrantsRequest.self, &request)
        for (index, participant) in body.nodes.enumerated() {
            try Identifier.validate(participant, field: "nodes[\(index)]")
        }
        let signer = try await grants.signer(cluster: cluster)
        let task = try await store.queue.grantRollback(cluster: cluster, node: node, taskID: id, attempt: body.attempt, lease: body.lease,
                                                 nodes: body.nodes)
        let now = Date().timeIntervalSince1970
        let signed = try GrantIssuer.grants(for: task, nodes: body.nodes, verb: .rollback, signer: signer, issuedAt: Int64(now),
                                            expiresAt: Int64((now + participantCallTime(task).inSeconds).rounded(.up)))
        return try jsonResponse(GrantsResponse(grants: signed))
    }

    /// Whether the token whose SHA-256 the agent sends may read the cluster (`read` on it): the verdict on
    /// a scrape of the agent's `/metrics`, given without the scraper's secret ever leaving the agent.
    func scrapeCheck(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        _ = try context.pathIdentifier("node_id")
        let body = try await decode(ScrapeCheckRequest.self, &request)
        let digest = body.tokenSHA256
        guard digest.utf8.count == 64, digest.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw APIError(.unprocessableContent, code: .invalidField, message: "token_sha256 is 64 lowercase hex digits",
                           field: "token_sha256")
        }
        let status: Int
        if let token = try await credentials.token(secretHash: digest), token.isValid() {
            status = Access.client(.read).allows(token, cluster: cluster, node: nil) ? 200 : 403
        } else {
            status = 401
        }
        return try jsonResponse(ScrapeCheckResponse(status: status))
    }

    func heartbeat(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let body = try await decode(HeartbeatRequest.self, &request)
        try await store.clusters.recordHeartbeat(cluster: cluster, node: node)
        // Progress comes from participants, through the agent: one that makes no sense (negative, units too
        // long) is dropped, and its task's lease renewed all the same — one bad peer must not cost the node
        // every lease this heartbeat renews.
        let held = body.tasks.map { task in
            var task = task
            if task.progress?.isSensible == false { task.progress = nil }
            return task
        }
        let outcome = try await store.queue.renewLeases(cluster: cluster, node: node, tasks: held, lease: configuration.lease)
        return try jsonResponse(outcome)
    }

    func report(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let id = try context.taskID(cluster: cluster)
        let started = TraceInstant.now
        let body = try await decode(StateReportRequest.self, &request)
        defer { Self.traceReports([(id, body.attempt, body.traceparent)], cluster: cluster, node: node, from: started) }
        let task = try await store.queue.report(body.report, cluster: cluster, node: node, taskID: id)
        return try jsonResponse(TaskObject(task))
    }

    /// Many reports written with one statement; each item gets the status the single-task route would
    /// have answered, so a stale or invalid item is refused alone.
    func reportBatch(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let node = try context.pathIdentifier("node_id")
        let started = TraceInstant.now
        let body = try await decode(StateReportBatchRequest.self, &request)
        defer {
            Self.traceReports(body.reports.map { ($0.taskID, $0.report.attempt, $0.report.traceparent) }, cluster: cluster, node: node,
                              from: started)
        }
        guard (1...configuration.maximumReportBatch).contains(body.reports.count) else {
            throw APIError(.unprocessableContent, code: .invalidField,
                           message: "reports must hold from 1 to \(configuration.maximumReportBatch) items", field: "reports")
        }
        let outcomes = try await store.queue.reportBatch(body.reports.map { ($0.taskID, $0.report.report) }, cluster: cluster, node: node)
        let results = zip(body.reports.indices, outcomes).map { index, outcome in
            let taskID = body.reports[index].taskID
            switch outcome {
            case .success(let task):
                return StateReportBatchResponse.Result(taskID: taskID, status: 200, state: task.state)
            case .failure(var failure):
                failure.field = failure.field.map { "reports[\(index)].\($0)" }
                let error = APIError.from(failure)
                return StateReportBatchResponse.Result(taskID: taskID, status: Int(error.status.code), error: error.body.error)
            }
        }
        return try jsonResponse(StateReportBatchResponse(results: results))
    }
}
