import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle
import TaskyardAPI
import TaskyardDomain
import TaskyardTracing
import Tracing

extension Request {
    /// A header's value, nil when it is absent or empty: an empty `traceparent`, `X-Opaque-Id` or
    /// `Idempotency-Key` carries nothing (W3C asks a receiver to ignore an empty trace context), not a bad value.
    func header(_ name: HTTPField.Name) -> String? {
        headers[name].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
    }
}

extension APIRoutes {
    func submit(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let traceparent = request.header(.traceparent)
        return try await withSpan("taskyard.submit", context: TraceContext.context(parent: traceparent), ofKind: .server) { span in
            let body = try await decode(SubmitTaskRequest.self, &request)
            let submission = try body.submission(idempotencyKey: request.header(.idempotencyKey) ?? body.idempotencyKey,
                                                 opaqueID: request.header(.opaqueID), traceparent: traceparent)
            let (task, created) = try await store.submissions.submit(submission, cluster: cluster)
            span.attributes["taskyard.cluster"] = cluster
            span.attributes["taskyard.task_id"] = Int(task.id)
            return try jsonResponse(TaskObject(task), status: created ? .created : .ok)
        }
    }

    func submitBatch(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let traceparent = request.header(.traceparent)
        return try await withSpan("taskyard.submit", context: TraceContext.context(parent: traceparent), ofKind: .server) { span in
            let body = try await decode(SubmitBatchRequest.self, &request)
            let opaqueID = request.header(.opaqueID)
            let submissions = try body.tasks.enumerated().map { index, item throws(TaskyardError) in
                try item.submission(idempotencyKey: item.idempotencyKey, opaqueID: opaqueID, traceparent: traceparent,
                                    fieldPrefix: "tasks[\(index)].")
            }
            let results = try await store.submissions.submit(batch: submissions, cluster: cluster)
            span.attributes["taskyard.cluster"] = cluster
            span.attributes["taskyard.tasks"] = results.count
            // 200 when every item was made before (all keys matched): the batch created nothing.
            return try jsonResponse(TaskBatch(tasks: results.map { TaskObject($0.task) }),
                                    status: results.contains(where: \.created) ? .created : .ok)
        }
    }

    func listTasks(_ request: Request, _ context: TaskyardRequestContext, _ caller: APIToken?) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        var filter = TaskFilter()
        if let states = request.query("state") {
            filter.states = try states.split(separator: ",").map { name in
                guard let state = TaskState(rawValue: String(name)) else {
                    throw APIError.badRequest("state must be one of \(TaskState.allCases.map(\.rawValue).joined(separator: ", "))", field: "state")
                }
                return state
            }
        }
        filter.type = request.query("type")
        filter.node = request.query("node")
        filter.since = try request.queryDate("since")
        filter.until = try request.queryDate("until")
        if let parent = request.query("parent_id") {
            if parent == "none" {
                filter.parent = .roots
            } else if let id = Int64(parent), id > 0 {
                filter.parent = .task(id)
            } else {
                throw APIError.badRequest("parent_id must be a task id or none", field: "parent_id")
            }
        }
        filter.opaqueID = request.query("opaque_id")
        filter.includeInternal = request.query("internal") == "true"
        filter.limit = try request.queryInt("limit", in: TaskFilter.limitRange) ?? TaskFilter.defaultLimit
        if let after = request.query("after") {
            do { filter.after = try TaskCursor(after) } catch { throw APIError.badRequest(error.message, field: "after") }
        }
        let page = try await reads(caller).tasks(cluster: cluster, filter: filter)
        return try jsonResponse(TaskList(tasks: page.tasks.map(TaskObject.init), next: page.next?.description))
    }

    func getTask(_ context: TaskyardRequestContext, _ caller: APIToken?) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.taskID(cluster: cluster)
        let reads = reads(caller)
        let task = try await reads.task(cluster: cluster, id: id)
        let children = try await reads.children(cluster: cluster, of: id)
        return try jsonResponse(TaskDetail(task: TaskObject(task), children: children.map(TaskSummary.init)))
    }

    /// Every attempt's participant outcomes (`?attempt=N`: that attempt's), oldest attempt first.
    func participants(_ request: Request, _ context: TaskyardRequestContext, _ caller: APIToken?) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.taskID(cluster: cluster)
        let attempt = try request.queryInt("attempt", in: 1...Int(Int32.max))
        let records = try await reads(caller).participantOutcomes(cluster: cluster, taskID: id, attempt: attempt)
        return try jsonResponse(ParticipantList(participants: records.map(ParticipantObject.init)))
    }

    func events(_ request: Request, _ context: TaskyardRequestContext, _ caller: APIToken?) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.taskID(cluster: cluster)
        let limit = try request.queryInt("limit", in: TaskFilter.limitRange) ?? TaskFilter.limitRange.upperBound
        var after: Int64 = 0
        if let text = request.query("after") {
            guard let id = Int64(text), id > 0 else { throw APIError.badRequest("after is not a cursor from a previous page", field: "after") }
            after = id
        }
        let page = try await reads(caller).events(cluster: cluster, taskID: id, after: after, limit: limit)
        return try jsonResponse(EventList(events: page.events.map(EventObject.init), next: page.next.map(String.init)))
    }

    func tree(_ request: Request, _ context: TaskyardRequestContext, _ caller: APIToken?) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.taskID(cluster: cluster)
        let limit = try request.queryInt("limit", in: TaskFilter.limitRange) ?? TaskFilter.limitRange.upperBound
        var after: TreeCursor?
        if let text = request.query("after") {
            do { after = try TreeCursor(text) } catch { throw APIError.badRequest(error.message, field: "after") }
        }
        let page = try await reads(caller).tree(cluster: cluster, id: id, after: after, limit: limit)
        return try jsonResponse(TaskList(tasks: page.tasks.map(TaskObject.init), next: page.next?.description))
    }

    /// 200 with the task once it is terminal; 408 with the task as it stands when `timeout` passes first.
    /// Woken by the notification of its finish, not by polling.
    func wait(_ request: Request, _ context: TaskyardRequestContext, _ caller: APIToken) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let slot = try streamSlot(for: caller, context)
        defer { slot.release() }
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.taskID(cluster: cluster)
        let timeout = try request.queryDouble("timeout", in: 0...configuration.maximumWait.inSeconds) ?? 30
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(timeout)
        let topic = Wakeups.Topic.finished(cluster: cluster, task: id)
        var first = true
        while true {
            // A wait lasts no longer than its token: each re-check first asks whether it is still valid.
            if !first, await !authenticator.stillValid(authorization: request.headers[.authorization]) {
                throw APIError.unauthenticated("the token is unknown, expired or revoked")
            }
            first = false
            let ticket = wakeups.register(topic)
            let task: TaskRecord
            do { task = try await store.reads.task(cluster: cluster, id: id) } catch {
                wakeups.forget(ticket)
                throw error
            }
            if task.state.isTerminal {
                wakeups.forget(ticket)
                return try jsonResponse(TaskObject(task))
            }
            let remaining = deadline - clock.now
            guard remaining > .zero, !Task.isCancelled else {
                wakeups.forget(ticket)
                return try jsonResponse(TaskObject(task), status: .requestTimeout)
            }
            await wakeups.wait(ticket, timeout: min(remaining, configuration.waitRecheckInterval))
        }
    }

    /// `GET …/changes`: a server-sent event for each change of the cluster's tasks, from the events table:
    /// `change`, one task transition, whose SSE `id` is its position (`ChangeCursor`). A client that
    /// reconnects with `Last-Event-ID` first gets every change after that position still in the history,
    /// then the live ones. Beside them, hints as this server learns of a change (its own and other
    /// replicas'): `work` with the node that has tasks to take or just took them, `finished` with the task
    /// that ended — the dashboard re-reads what it shows on each. A comment every 15 s keeps the stream
    /// open through proxies. With `timeout` (seconds) the stream ends then; without, when the client goes.
    func changes(_ request: Request, _ context: TaskyardRequestContext, _ caller: APIToken) async throws -> Response {
        try request.rejectEmptyQueryValues()
        let cluster = try context.pathIdentifier("cluster_id")
        let timeout = try request.queryDouble("timeout", in: 0...86_400)
        var resumeFrom: ChangeCursor?
        if let text = request.headers[.lastEventID] {
            guard let cursor = ChangeCursor(text) else {
                throw APIError.badRequest("Last-Event-ID is not the id of an event of this stream", field: "Last-Event-ID")
            }
            resumeFrom = cursor
        }
        let slot = try streamSlot(for: caller, context)
        // Where the feed starts, read before the response: every change after it is sent.
        let start: ChangeCursor
        do {
            if let resumeFrom { start = resumeFrom } else { start = try await store.reads.changes(cluster: cluster, after: nil).next }
        } catch {
            slot.release()
            throw error
        }
        let authorization = request.headers[.authorization]
        let (changes, watcher) = wakeups.watch(cluster: cluster)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // Ends the watch (its entry in `wakeups` holds the stream open until then), and frees the slot.
            defer {
                watcher.finish()
                slot.release()
            }
            try await writer.write(ByteBuffer(string: "retry: 2000\n: watching cluster \(cluster)\n\n"))
            // Until the client goes (a write fails) or the server shuts down (the page then reconnects).
            try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while true {
                            try await Task.sleep(for: .seconds(15))
                            watcher.yield(.keepAlive)
                        }
                    }
                    group.addTask {
                        while true {
                            try await Task.sleep(for: ChangeFeed.recheckInterval)
                            watcher.yield(.recheck)
                        }
                    }
                    if let timeout {
                        group.addTask {
                            try await Task.sleep(for: .seconds(timeout))
                            watcher.finish()
                        }
                    }
                    // A stream lasts no longer than its token: revoked or expired, it ends within seconds.
                    group.addTask {
                        while await authenticator.stillValid(authorization: authorization) {
                            try await Task.sleep(for: Self.tokenRecheckInterval)
                        }
                        watcher.finish()
                    }
                    var feed = ChangeFeed(cluster: cluster, position: start, reads: store.reads)
                    try await writer.write(ByteBuffer(string: try await feed.read(force: true)))
                    for await watched in changes {
                        var text = Self.serverSentEvent(watched)
                        if case .change = watched { feed.changed() }
                        text += try await feed.read(force: false)
                        if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
                    }
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                watcher.finish()
            }
            try await writer.finish(nil)
        })
    }

    /// How often an open change stream asks whether its token is still valid.
    static let tokenRecheckInterval: Duration = .seconds(1)

    /// A slot for one more long request of `caller`'s token from the client's address; 429 when either
    /// holds its share already.
    private func streamSlot(for caller: APIToken, _ context: TaskyardRequestContext) throws -> StreamSlots.Slot {
        let limit = configuration.maximumStreamsPerToken
        let addressLimit = configuration.maximumStreamsPerAddress
        switch streams.take(caller.id, limit: limit, address: context.channel.remoteAddress?.ipAddress, addressLimit: addressLimit) {
        case .success(let slot):
            return slot
        case .failure(let refusal):
            let holder = refusal == .token ? "this token holds \(limit)" : "this client address holds \(addressLimit)"
            var error = APIError(.tooManyRequests, code: .tooManyStreams,
                                 message: "\(holder) change streams and waits open on this server already: close one first")
            error.headers[.retryAfter] = "1"
            throw error
        }
    }

    private static func serverSentEvent(_ watched: Wakeups.Watched) -> String {
        switch watched {
        case .change(.work(_, let node)): "event: work\ndata: {\"node\": \"\(node)\"}\n\n"
        case .change(.finished(_, let task)): "event: finished\ndata: {\"task_id\": \(task)}\n\n"
        case .keepAlive: ": keep-alive\n\n"
        case .recheck: ""
        }
    }

    func cancel(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.taskID(cluster: cluster)
        // The body is optional: a bare POST cancels without a reason.
        var reason: String?
        if request.headers[.contentType] != nil {
            reason = try await decode(CancelRequest.self, &request).reason
        }
        let task = try await store.submissions.cancel(cluster: cluster, taskID: id, reason: reason, opaqueID: request.header(.opaqueID))
        return try jsonResponse(TaskObject(task))
    }

    func retry(_ request: inout Request, _ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.taskID(cluster: cluster)
        // The body is optional: a bare POST retries with the default (only the participants that did not complete).
        var participants = "failed"
        if request.headers[.contentType] != nil, let asked = try await decode(RetryRequest.self, &request).participants {
            guard RetryRequest.choices.contains(asked) else { throw TaskyardError.invalid("participants", "must be \"failed\" or \"all\"") }
            participants = asked
        }
        return try jsonResponse(TaskObject(try await store.submissions.retry(cluster: cluster, taskID: id, onlyFailed: participants == "failed",
                                                                           opaqueID: request.header(.opaqueID))))
    }

    func delete(_ context: TaskyardRequestContext) async throws -> Response {
        let cluster = try context.pathIdentifier("cluster_id")
        let id = try context.taskID(cluster: cluster)
        try await store.submissions.delete(cluster: cluster, taskID: id)
        return Response(status: .noContent)
    }
}
