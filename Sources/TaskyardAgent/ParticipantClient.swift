import AsyncHTTPClient
import Foundation
import NIOCore
import TaskyardAPI
import TaskyardClient
import TaskyardDomain
import TaskyardTracing
import Tracing

/// The initiator's side of the participant protocol: run, roll back, ask progress, cancel. Every call
/// carries the grant the server signed for that node and verb; URLs are built from the endpoint's scheme, host and port only; a redirect is
/// an answer, never followed; and what a participant said is never copied raw into a task: a failure is
/// its error message (cut short, control characters dropped) or the HTTP status.
struct ParticipantClient: Sendable {
    let transport: HTTPTransport
    /// Longest a run or rollback may take.
    let timeout: Duration
    /// Gathers the runs and rollbacks for each node into one request (while its `run` loop runs).
    let batcher: ParticipantBatcher

    init(transport: HTTPTransport, timeout: Duration) {
        self.transport = transport
        self.timeout = timeout
        batcher = ParticipantBatcher(transport: transport, timeout: timeout)
    }

    enum Answer: Sendable, Equatable {
        case completed(RawJSON?)
        case failed(String)
        /// The rollback route said the type declares no rollback.
        case noRollback
    }

    /// Runs the task's handler on the participant with the claim's run grant for it — or, given a
    /// rollback grant, its rollback — in a batch with the other calls to that node. Throws only on
    /// cancellation.
    /// When tracing, each call is a span of its own, and the participant gets its context (else the task's
    /// `traceparent`, as the client sent it).
    func run(_ task: ClaimedTaskObject, on node: String, at endpoint: NodeEndpoint, initiator: String,
             rollbackGrant: String? = nil) async throws -> Answer {
        func call(traceparent: String?) async throws -> Answer {
            let call = ParticipantCall(type: task.task.type, rollback: rollbackGrant != nil, grant: rollbackGrant ?? task.grant(for: node),
                                       request: ParticipantRequest(taskID: task.task.id, clusterID: task.task.clusterID,
                                                                   attempt: task.task.attempt, initiator: initiator,
                                                                   payload: task.task.payload, traceparent: traceparent))
            return try await batcher.call(call, node: node, at: endpoint) { try await runAlone(call, on: node, at: endpoint) }
        }
        guard TraceContext.isEnabled else { return try await call(traceparent: task.task.traceparent) }
        return try await withSpan(rollbackGrant == nil ? "taskyard.participant_call" : "taskyard.rollback_call", ofKind: .client) { span in
            span.attributes["taskyard.task_id"] = Int(task.task.id)
            span.attributes["taskyard.node"] = node
            let answer = try await call(traceparent: TraceContext.traceparent(of: span.context) ?? task.task.traceparent)
            if case .failed(let reason) = answer { span.setStatus(SpanStatus(code: .error, message: reason)) }
            return answer
        }
    }

    /// One call in a request of its own (`POST …/tasks/{type}`): for a participant that serves no batches.
    func runAlone(_ call: ParticipantCall, on node: String, at endpoint: NodeEndpoint) async throws -> Answer {
        let rollback = call.rollback ?? false
        var path = ["api", "v1", "tasks", call.type]
        if rollback { path.append("rollback") }
        var request = HTTPClientRequest(url: endpoint.url(path))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "Bearer \(call.grant)")
        if let traceparent = call.traceparent { request.headers.add(name: "traceparent", value: traceparent) }
        do {
            request.body = .bytes(ByteBuffer(bytes: try APIJSON.encode(call.request)))
            let response = try await transport.client.execute(request, timeout: .milliseconds(timeout.wholeMilliseconds))
            let data = Data(try await response.body.collect(upTo: 16 << 20).readableBytesView)
            let status = Int(response.status.code)
            if (200..<300).contains(status) {
                // Only a participant's answer counts as success: an object with a `result` key.
                guard let answer = data.withUnsafeBytes({ JSONParser.parseMessage($0.bindMemory(to: UInt8.self)) }),
                      case .object(let fields) = answer, let result = fields["result"] else {
                    return .failed("node \(node) answered HTTP \(status) without a participant result")
                }
                return .completed(result.raw.unlessNull)
            }
            return Self.answer(status: status, error: (try? APIJSON.decode(ErrorBody.self, from: data))?.error,
                               node: node, rollback: rollback)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            return .failed("cannot reach node \(node) at \(endpoint): \(Self.sanitized(String(describing: error)))")
        }
    }

    /// A participant's failure as the initiator records it.
    static func answer(status: Int, error: ErrorBody.Detail?, node: String, rollback: Bool) -> Answer {
        if rollback, status == 404, error?.code == .noRollback { return .noRollback }
        if let message = error?.message { return .failed(sanitized(message)) }
        return .failed("node \(node) answered HTTP \(status)")
    }

    /// How far the participant's handler for the task is; nil when it has not said.
    func progress(of task: ClaimedTaskObject, on node: String, at endpoint: NodeEndpoint) async -> TaskProgress? {
        var request = HTTPClientRequest(url: endpoint.url(["api", "v1", "tasks", String(task.task.id), "progress"]))
        request.method = .GET
        request.headers.add(name: "Authorization", value: "Bearer \(task.grant(for: node))")
        guard let response = try? await transport.client.execute(request, timeout: .seconds(2)), response.status.code == 200,
              let body = try? await response.body.collect(upTo: 1 << 16)
        else { return nil }
        return try? APIJSON.decode(TaskProgress.self, from: Data(body.readableBytesView))
    }

    /// Asks the participant to stop its work for the task.
    func cancel(_ task: ClaimedTaskObject, on node: String, at endpoint: NodeEndpoint) async {
        var request = HTTPClientRequest(url: endpoint.url(["api", "v1", "tasks", String(task.task.id), "cancel"]))
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(task.grant(for: node))")
        _ = try? await transport.client.execute(request, timeout: .seconds(5))
    }

    /// At most 500 characters of a participant's words, control characters as spaces, for a task's error.
    static func sanitized(_ text: String) -> String {
        cleanedReportText(text.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: " "), maximumBytes: 500)
    }
}
