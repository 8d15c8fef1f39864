import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import TaskyardAPI
import TaskyardDomain
import TaskyardTracing
import Tracing
import TaskyardSecurity
import Synchronization

/// The participant side of an agent: `POST /api/v1/tasks/{type}` runs the handler for the type,
/// `POST /api/v1/tasks/{task_id}/cancel` stops the work for a task if it runs here. Every route but
/// `/healthz` answers only a call whose grant the `GrantGate` accepts.
final class ParticipantEndpoint: Sendable {
    let handlers: HandlerRegistry
    let node: String
    let gate: GrantGate
    let running = RunningWork()
    /// Longest a handler may run; `RunningWork.cancelOverdue` stops it after that.
    let handlerTimeout: Duration
    let metrics = AgentMetrics()
    /// Each grant runs once: a repeat gets the recorded answer.
    let ledger = RunLedger()
    /// Handler runs at once on this node (`--max-handler-runs`).
    let slots: HandlerSlots
    /// Connections open at once (`--max-connections`); one more is closed as it arrives.
    let connections: OpenConnections
    /// Who may read `GET /metrics`, and what it shows beside `metrics`.
    private let scrapes: ScrapeGate
    private let heldTasks: @Sendable () -> Int

    init(handlers: HandlerRegistry, node: String, gate: GrantGate, handlerTimeout: Duration, maximumHandlerRuns: Int,
         maximumConnections: Int, scrapes: ScrapeGate, heldTasks: @escaping @Sendable () -> Int) {
        self.handlers = handlers
        slots = HandlerSlots(limit: maximumHandlerRuns)
        connections = OpenConnections(limit: maximumConnections)
        self.node = node
        self.gate = gate
        self.handlerTimeout = handlerTimeout
        self.scrapes = scrapes
        self.heldTasks = heldTasks
    }

    func application(host: String, port: Int, tls: TLSFiles?, logger: Logger,
                     onListening: @escaping @Sendable (Int) async -> Void) throws -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.get("/healthz") { _, _ in Self.json(["status": "ok"]) }
        // For a client token with `read` on this agent's cluster, as the server judges it.
        router.get("/metrics") { request, _ in
            switch await self.scrapes.check(authorization: request.headers[.authorization]) {
            case .allowed:
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.exposition(heldTasks: self.heldTasks()))))
            case .refused(let status):
                var response = switch status {
                case 401: Self.error(.unauthorized, code: .unauthenticated, "a client token with read on cluster \(self.scrapes.cluster) is needed")
                case 403: Self.error(.forbidden, code: .forbidden, "this token may not read cluster \(self.scrapes.cluster)")
                case 429: Self.error(.tooManyRequests, code: .tooManyRequests, "too many scrapes with unknown tokens; try again in a second")
                default: Self.error(.serviceUnavailable, code: .serverUnavailable, "the server that vouches for tokens cannot be reached")
                }
                if status == 401 { response.headers[.wwwAuthenticate] = "Bearer" }
                return response
            }
        }
        // Many calls at once, each with its own grant; answers stream back as each call ends.
        router.post("/api/v1/participant-calls") { request, _ in
            var request = request
            return await self.runBatch(request: &request)
        }
        // One parameter name at one position: the router requires it. It is a task type here…
        router.post("/api/v1/tasks/:target") { request, context in
            var request = request
            return await self.run(type: context.parameters.get("target") ?? "", request: &request)
        }
        // …a task type here, for its rollback…
        router.post("/api/v1/tasks/:target/rollback") { request, context in
            var request = request
            return await self.run(type: context.parameters.get("target") ?? "", rollback: true, request: &request)
        }
        // …and a task id here: how far the handlers for that task on this node are…
        router.get("/api/v1/tasks/:target/progress") { request, context in
            let id = context.parameters.get("target").flatMap(Int64.init) ?? 0
            if let refusal = await self.refusal(request, taskID: id) { return refusal }
            guard let progress = await self.running.progress(taskID: id)
            else { return Self.error(.notFound, code: .noProgress, "no progress reported for that task here") }
            return Self.json(TaskProgress(completed: progress.completed, total: progress.total))
        }
        // …or a task to stop.
        router.post("/api/v1/tasks/:target/cancel") { request, context in
            let id = context.parameters.get("target").flatMap(Int64.init) ?? 0
            switch await self.grant(request, taskID: id) {
            case .failure(let refused): return refused.response
            case .success(let grant): await self.running.cancel(taskID: id, attempt: grant.attempt)
            }
            return Response(status: .accepted)
        }
        // Connections idle (or stalled mid-request) for a minute are closed; a handler's run is not idle.
        let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [ConnectionLimiter(connections: self.connections)],
                                               idleTimeout: .seconds(60))
        let server: HTTPServerBuilder = if let tls {
            try .tls(.http1(configuration: http1), tlsConfiguration: tls.serverConfiguration())
        } else {
            .http1(configuration: http1)
        }
        return Application(router: router, server: server,
                           configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "taskyard-agent"),
                           onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
                           logger: logger)
    }

    /// The answer refusing a call (progress, cancel) whose grant does not name this task; nil when it does.
    private func refusal(_ request: Request, taskID: Int64) async -> Response? {
        if case .failure(let refused) = await grant(request, taskID: taskID) { return refused.response }
        return nil
    }

    /// The request's grant for `taskID`, or the answer that refuses it.
    private func grant(_ request: Request, taskID: Int64) async -> Result<Grant, RefusedResponse> {
        do {
            return .success(try await gate.check(authorization: request.headers[.authorization], taskID: taskID))
        } catch {
            return .failure(RefusedResponse(response: Self.response(refusing: error)))
        }
    }

    struct RefusedResponse: Error {
        let response: Response
    }

    private static func response(refusing refusal: GrantGate.Refusal) -> Response {
        let (status, code, message) = refusal.response
        var response = error(status, code: code, message)
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer" }
        return response
    }

    /// A participant request carries one payload, whose compact JSON the server took at most its
    /// `payload_bytes` (256 KiB by default): twice that holds it with its envelope.
    static let maximumBodyBytes = 512 << 10

    private func run(type: String, rollback: Bool = false, request: inout Request) async -> Response {
        // The body is read only for a grant this node can trust, for this type: nobody else makes it
        // collect megabytes.
        let grant: Grant
        let verb: Grant.Verb = rollback ? .rollback : .run
        do throws(GrantGate.Refusal) {
            grant = try await gate.verify(authorization: request.headers[.authorization])
            if grant.type != type { throw .forbidden("the grant is for task type \(grant.type), not \(type)") }
            if grant.verb != verb { throw .forbidden("the grant allows \(grant.verb.rawValue), not \(verb.rawValue)") }
        } catch {
            metrics.participantCall(route: .single, refused: true)
            return Self.response(refusing: error)
        }
        var body: ParticipantRequest
        do {
            let buffer = try await request.collectBody(upTo: Self.maximumBodyBytes)
            body = try APIJSON.decode(ParticipantRequest.self, from: Data(buffer.readableBytesView))
            body.traceparent = request.headers[HTTPField.Name("traceparent")!]
        } catch is NIOTooManyBytesError {
            metrics.participantCall(route: .single, refused: true)
            return Self.error(.contentTooLarge, code: .bodyTooLarge,
                              "a participant request is at most \(Self.maximumBodyBytes) bytes")
        } catch {
            metrics.participantCall(route: .single, refused: true)
            return Self.error(.badRequest, code: .badRequest, "the participant request cannot be read: \(error)")
        }
        // The rest of the match needs the body; the signature was verified once, above.
        do throws(GrantGate.Refusal) {
            try gate.match(grant, taskID: body.taskID, attempt: body.attempt, type: type, initiator: body.initiator,
                           payload: body.payload, clusterID: body.clusterID, verb: verb)
        } catch {
            metrics.participantCall(route: .single, refused: true)
            return Self.response(refusing: error)
        }
        metrics.participantCall(route: .single, refused: false)
        switch await perform(type: type, rollback: rollback, body, once: RunLedger.Use(grant)) {
        case .completed(let result):
            return Self.json(ParticipantResult(result: result))
        case .failed(let status, let code, let message):
            return Self.error(HTTPResponse.Status(code: status), code: code, message)
        }
    }

    /// Most calls in one batch, and most bytes (a single call's most, times that): what one request can
    /// set going on this node. An initiator packs its calls to a node under both.
    static let maximumBatchCalls = 32
    static let maximumBatchBodyBytes = maximumBodyBytes * maximumBatchCalls

    /// `POST …/participant-calls`. The header's grant (the first call's) must be one this node trusts
    /// before the body is read; then every call is checked against its own grant and runs at once, and
    /// each call's line is written the moment it ends.
    private func runBatch(request: inout Request) async -> Response {
        do throws(GrantGate.Refusal) {
            _ = try await gate.verify(authorization: request.headers[.authorization])
        } catch {
            return Self.response(refusing: error)
        }
        let batch: ParticipantBatchRequest
        do {
            let buffer = try await request.collectBody(upTo: Self.maximumBatchBodyBytes)
            batch = try APIJSON.decode(ParticipantBatchRequest.self, from: Data(buffer.readableBytesView))
        } catch is NIOTooManyBytesError {
            return Self.error(.contentTooLarge, code: .bodyTooLarge, "a batch of participant calls is at most \(Self.maximumBatchBodyBytes) bytes")
        } catch {
            return Self.error(.badRequest, code: .badRequest, "the batch of participant calls cannot be read: \(error)")
        }
        guard (1...Self.maximumBatchCalls).contains(batch.calls.count) else {
            return Self.error(.badRequest, code: .badRequest, "a batch holds 1 to \(Self.maximumBatchCalls) calls, not \(batch.calls.count)")
        }
        metrics.participantBatch()
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
            try await withThrowingTaskGroup(of: ParticipantBatchLine.self) { group in
                // The same (task, attempt, verb) twice in one batch: the first runs, the others are refused.
                var seen = Set<RunLedger.Key>()
                for (index, call) in batch.calls.enumerated() {
                    let key = RunLedger.Key(taskID: call.taskID, attempt: call.attempt, verb: call.rollback == true ? .rollback : .run)
                    guard seen.insert(key).inserted else {
                        self.metrics.participantCall(route: .batch, refused: true)
                        group.addTask {
                            ParticipantBatchLine(index: index, status: 409, error: .init(
                                code: .duplicateCall, message: "the batch holds this call (task \(call.taskID), attempt \(call.attempt)) more than once; it runs once"))
                        }
                        continue
                    }
                    group.addTask { await self.answer(call, index: index) }
                }
                for try await line in group {
                    var bytes = (try? APIJSON.encode(line)) ?? Data()
                    bytes.append(UInt8(ascii: "\n"))
                    try await writer.write(ByteBuffer(bytes: bytes))
                }
            }
            try await writer.finish(nil)
        })
    }

    /// One call of a batch, checked against its own grant as the single route checks its header's.
    private func answer(_ call: ParticipantCall, index: Int) async -> ParticipantBatchLine {
        func refused(_ refusal: GrantGate.Refusal) -> ParticipantBatchLine {
            let (status, code, message) = refusal.response
            return ParticipantBatchLine(index: index, status: Int(status.code), error: .init(code: code, message: message))
        }
        let grant: Grant
        do throws(GrantGate.Refusal) {
            // The body is read already: one match checks every field, the type and verb included.
            grant = try await gate.verify(authorization: "Bearer " + call.grant)
            try gate.match(grant, taskID: call.taskID, attempt: call.attempt, type: call.type, initiator: call.initiator,
                           payload: call.payload, clusterID: call.clusterID, verb: call.rollback == true ? .rollback : .run)
        } catch {
            metrics.participantCall(route: .batch, refused: true)
            return refused(error)
        }
        metrics.participantCall(route: .batch, refused: false)
        switch await perform(type: call.type, rollback: call.rollback ?? false, call.request, once: RunLedger.Use(grant)) {
        case .completed(let result):
            return ParticipantBatchLine(index: index, status: 200, result: result)
        case .failed(let status, let code, let message):
            return ParticipantBatchLine(index: index, status: status, error: .init(code: code, message: message))
        }
    }

    /// What a participant call answers: its handler's result, or the status and error the endpoint sends.
    enum Answer: Sendable, Equatable {
        case completed(RawJSON?)
        case failed(status: Int, code: ErrorCode, message: String)
    }

    /// Runs the handler for `type` (or its rollback) on this node, once for the grant `use` stands for (a
    /// repeat gets the recorded answer) and in a handler slot: the work behind the HTTP route, which the
    /// agent also calls directly when its own node is a participant of the task it initiates.
    func perform(type: String, rollback: Bool = false, _ body: ParticipantRequest, once use: RunLedger.Use) async -> Answer {
        await ledger.once(use) {
            await slots.withSlot { await perform(type: type, rollback: rollback, body) }
                ?? .failed(status: 409, code: .cancelled, message: "task \(body.taskID) was cancelled on \(node) before its handler started")
        }
    }

    private func perform(type: String, rollback: Bool, _ body: ParticipantRequest) async -> Answer {
        guard let handler = rollback ? handlers.rollbackHandler(for: type) : handlers.handler(for: type) else {
            metrics.handlerRun(type: "unknown", outcome: rollback ? "no_rollback" : "unknown_type", duration: nil)
            return rollback
                ? .failed(status: 404, code: .noRollback, message: "task type \(type) declares no rollback on node \(node)")
                : .failed(status: 404, code: .unknownTaskType, message: "node \(node) has no handler for task type \(type)")
        }
        let started = ContinuousClock.now
        let answer = await run(handler, type: type, body)
        let outcome = switch answer {
        case .completed: "completed"
        case .failed(_, let code, _): code == .handlerFailed ? "failed" : code.rawValue
        }
        metrics.handlerRun(type: type, outcome: rollback ? "rollback_" + outcome : outcome, duration: ContinuousClock.now - started)
        return answer
    }

    /// Runs the handler — in a span of its own when tracing, a child of the caller's (whose context the
    /// handler then gets as its `traceparent`).
    private func run(_ handler: any TaskHandler, type: String, _ body: ParticipantRequest) async -> Answer {
        // An invalid one is dropped, as W3C trace context asks of a receiver.
        let traceparent = body.traceparent.flatMap { try? TaskSubmission.validateTraceparent($0) == () ? $0 : nil }
        guard TraceContext.isEnabled else { return await run(handler, type: type, body, traceparent: traceparent) }
        return await withSpan("taskyard.handler", context: TraceContext.context(parent: traceparent), ofKind: .server) { span in
            span.attributes["taskyard.task_id"] = Int(body.taskID)
            span.attributes["taskyard.attempt"] = body.attempt
            span.attributes["taskyard.type"] = type
            span.attributes["taskyard.node"] = node
            let answer = await run(handler, type: type, body, traceparent: TraceContext.traceparent(of: span.context) ?? traceparent)
            if case .failed(_, _, let message) = answer { span.setStatus(SpanStatus(code: .error, message: message)) }
            return answer
        }
    }

    private func run(_ handler: any TaskHandler, type: String, _ body: ParticipantRequest, traceparent: String?) async -> Answer {
        let running = self.running
        let work = ParticipantWork(type: type, taskID: body.taskID, clusterID: body.clusterID, attempt: body.attempt,
                                   initiator: body.initiator, node: node, rawPayload: body.payload,
                                   traceparent: traceparent,
                                   progressSink: { completed, total in
                                       // Handlers report progress from synchronous code; the registry's
                                       // actor is reached on a task of its own, in order of no importance.
                                       Task { await running.setProgress(taskID: body.taskID, completed: completed, total: total) }
                                   })
        // The handler starts once its run is registered: progress it reports at once, or a cancel that
        // comes at once, must find it.
        let (registered, started) = AsyncStream<Void>.makeStream()
        // A task of its own, not a child: a cancel call (another request) or the agent's overdue sweep
        // cancels this run through the registry, by its handle.
        let job = Task {
            for await _ in registered { break }
            return try await handler.runKeepingBytes(work)
        }
        await running.add(taskID: body.taskID, attempt: body.attempt, job: job)
        started.finish()
        let answer = await answer(of: job, type: type, taskID: body.taskID)
        await running.remove(taskID: body.taskID, job: job)
        return answer
    }

    /// What a handler's run comes to, as the participant call answers it.
    private func answer(of job: Task<RawJSON?, any Error>, type: String, taskID: Int64) async -> Answer {
        do {
            return .completed(try await job.value)
        } catch let failure as HandlerFailure {
            return .failed(status: failure.status, code: .handlerFailed, message: failure.message)
        } catch is CancellationError {
            if await running.isOverdue(job) {
                return .failed(status: 504, code: .timedOut,
                               message: "the \(type) handler on \(node) ran longer than \(handlerTimeout) and was stopped")
            }
            return .failed(status: 409, code: .cancelled, message: "task \(taskID) was cancelled on \(node)")
        } catch {
            return .failed(status: 500, code: .handlerFailed, message: "\(error)")
        }
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? APIJSON.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ status: HTTPResponse.Status, code: ErrorCode, _ message: String) -> Response {
        json(ErrorBody(code: code, message: message), status: status)
    }
}

/// Handler runs in progress on this node, by task id, so that a cancel can stop them, and with their
/// start, so that one sweep a second stops those past the timeout. (A timer per run — a `Task.sleep`
/// raced against the handler — would stay armed for the whole timeout after the handler ended: 300 s of
/// timers at thousands of tasks a second is memory that looks leaked.)
actor RunningWork {
    private struct Run {
        let job: Task<RawJSON?, any Error>
        let started: ContinuousClock.Instant
    }

    private var runs: [Int64: [Run]] = [:]
    /// Cancels that came before their run (the call still on its way, or batched): the run is stopped the
    /// moment it registers. By task and attempt, so a later attempt is never stopped by an earlier one's
    /// cancel; kept a few minutes.
    private var earlyCancels: [TaskAttempt: ContinuousClock.Instant] = [:]

    private struct TaskAttempt: Hashable {
        let taskID: Int64
        let attempt: Int
    }
    private var progress: [Int64: (completed: Double, total: Double)] = [:]
    private var overdue: Set<Task<RawJSON?, any Error>> = []

    func setProgress(taskID: Int64, completed: Double, total: Double) {
        guard runs[taskID] != nil else { return }
        progress[taskID] = (completed, total)
    }

    func progress(taskID: Int64) -> (completed: Double, total: Double)? { progress[taskID] }

    func add(taskID: Int64, attempt: Int, job: Task<RawJSON?, any Error>) {
        runs[taskID, default: []].append(Run(job: job, started: .now))
        if earlyCancels.removeValue(forKey: TaskAttempt(taskID: taskID, attempt: attempt)) != nil { job.cancel() }
    }

    /// Stops the task's runs of `attempt`; one not registered yet is stopped as it registers.
    func cancel(taskID: Int64, attempt: Int) {
        if let runs = runs[taskID], !runs.isEmpty {
            for run in runs { run.job.cancel() }
            return
        }
        let now = ContinuousClock.now
        if earlyCancels.count >= 4096 { earlyCancels = earlyCancels.filter { now - $0.value < .seconds(300) } }
        if earlyCancels.count < 4096 { earlyCancels[TaskAttempt(taskID: taskID, attempt: attempt)] = now }
    }

    func remove(taskID: Int64, job: Task<RawJSON?, any Error>) {
        runs[taskID]?.removeAll { $0.job == job }
        overdue.remove(job)
        if runs[taskID]?.isEmpty == true {
            runs[taskID] = nil
            progress[taskID] = nil
        }
    }

    func cancel(taskID: Int64) {
        for run in runs[taskID] ?? [] { run.job.cancel() }
    }

    /// Stops the runs that have taken longer than `limit`.
    func cancelOverdue(limit: Duration) {
        let cutOff = ContinuousClock.now - limit
        for run in runs.values.joined() where run.started < cutOff && !overdue.contains(run.job) {
            overdue.insert(run.job)
            run.job.cancel()
        }
    }

    func isOverdue(_ job: Task<RawJSON?, any Error>) -> Bool { overdue.contains(job) }
}
