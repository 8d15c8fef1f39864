import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TaskyardAPI
import TaskyardDomain

/// The participant side of an agent: `POST /api/v1/tasks/{type}` runs the handler for the type,
/// `POST /api/v1/tasks/{task_id}/cancel` stops the work for a task if it runs here.
final class ParticipantEndpoint: Sendable {
    let handlers: HandlerRegistry
    let node: String
    let running = RunningWork()
    /// Longest a handler may run; `RunningWork.cancelOverdue` stops it after that.
    let handlerTimeout: Duration

    init(handlers: HandlerRegistry, node: String, handlerTimeout: Duration) {
        self.handlers = handlers
        self.node = node
        self.handlerTimeout = handlerTimeout
    }

    func application(host: String, port: Int, logger: Logger,
                     onListening: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.get("/healthz") { _, _ in Self.json(["status": "ok"]) }
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
        router.get("/api/v1/tasks/:target/progress") { _, context in
            guard let id = context.parameters.get("target").flatMap(Int64.init),
                  let progress = await self.running.progress(taskID: id)
            else { return Self.error(.notFound, code: "no_progress", "no progress reported for that task here") }
            return Self.json(HeartbeatRequest.Progress(completed: progress.completed, total: progress.total))
        }
        // …or a task to stop.
        router.post("/api/v1/tasks/:target/cancel") { _, context in
            if let id = context.parameters.get("target").flatMap(Int64.init) { await self.running.cancel(taskID: id) }
            return Response(status: .accepted)
        }
        return Application(router: router,
                           configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "taskyard-agent"),
                           onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
                           logger: logger)
    }

    private func run(type: String, rollback: Bool = false, request: inout Request) async -> Response {
        let body: ParticipantRequest
        do {
            let buffer = try await request.collectBody(upTo: 16 << 20)
            body = try APIJSON.decode(ParticipantRequest.self, from: Data(buffer.readableBytesView))
        } catch {
            return Self.error(.badRequest, code: "bad_request", "the participant request cannot be read: \(error)")
        }
        switch await perform(type: type, rollback: rollback, body) {
        case .completed(let result):
            return Self.json(ParticipantResult(result: result))
        case .failed(let status, let code, let message):
            return Self.error(HTTPResponse.Status(code: status), code: code, message)
        }
    }

    /// What a participant call answers: its handler's result, or the status and error the endpoint sends.
    enum Answer: Sendable {
        case completed(JSONValue?)
        case failed(status: Int, code: String, message: String)
    }

    /// Runs the handler for `type` (or its rollback) on this node: the work behind the HTTP route, which
    /// the agent also calls directly when its own node is a participant of the task it initiates.
    func perform(type: String, rollback: Bool = false, _ body: ParticipantRequest) async -> Answer {
        guard let handler = rollback ? handlers.rollbackHandler(for: type) : handlers.handler(for: type) else {
            return rollback
                ? .failed(status: 404, code: "no_rollback", message: "task type \(type) declares no rollback on node \(node)")
                : .failed(status: 404, code: "unknown_task_type", message: "node \(node) has no handler for task type \(type)")
        }
        let running = self.running
        let work = ParticipantWork(type: type, taskID: body.taskID, clusterID: body.clusterID, attempt: body.attempt,
                                   initiator: body.initiator, node: node, payload: body.payload,
                                   progressSink: { completed, total in
                                       Task { await running.setProgress(taskID: body.taskID, completed: completed, total: total) }
                                   })
        let job = Task { try await handler.run(work) }
        await running.add(taskID: body.taskID, job: job)
        defer { Task { await running.remove(taskID: body.taskID, job: job) } }
        do {
            return .completed(try await job.value)
        } catch let failure as HandlerFailure {
            return .failed(status: failure.status, code: "handler_failed", message: failure.message)
        } catch is CancellationError {
            if await running.isOverdue(job) {
                return .failed(status: 504, code: "timed_out",
                               message: "the \(type) handler on \(node) ran longer than \(handlerTimeout) and was stopped")
            }
            return .failed(status: 409, code: "cancelled", message: "task \(body.taskID) was cancelled on \(node)")
        } catch {
            return .failed(status: 500, code: "handler_failed", message: "\(error)")
        }
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? APIJSON.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ status: HTTPResponse.Status, code: String, _ message: String) -> Response {
        json(ErrorBody(code: code, message: message), status: status)
    }
}

/// Handler runs in progress on this node, by task id, so that a cancel can stop them, and with their
/// start, so that one sweep a second stops those past the timeout. (A timer per run — a `Task.sleep`
/// raced against the handler — would stay armed for the whole timeout after the handler ended: 300 s of
/// timers at thousands of tasks a second is memory that looks leaked.)
actor RunningWork {
    private struct Run {
        let job: Task<JSONValue?, any Error>
        let started: ContinuousClock.Instant
    }

    private var runs: [Int64: [Run]] = [:]
    private var progress: [Int64: (completed: Double, total: Double)] = [:]
    private var overdue: Set<Task<JSONValue?, any Error>> = []

    func setProgress(taskID: Int64, completed: Double, total: Double) {
        guard runs[taskID] != nil else { return }
        progress[taskID] = (completed, total)
    }

    func progress(taskID: Int64) -> (completed: Double, total: Double)? { progress[taskID] }

    func add(taskID: Int64, job: Task<JSONValue?, any Error>) {
        runs[taskID, default: []].append(Run(job: job, started: .now))
    }

    func remove(taskID: Int64, job: Task<JSONValue?, any Error>) {
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

    func isOverdue(_ job: Task<JSONValue?, any Error>) -> Bool { overdue.contains(job) }
}
