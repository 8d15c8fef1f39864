import Logging
import Synchronization
import TaskyardAPI
import TaskyardClient
import TaskyardDomain

/// Sends the agent's finished tasks to the server in batches: whatever finished while the previous
/// request was in flight goes in the next one (`POST …/states`), so a busy agent makes one request for
/// many tasks and an idle one reports each task at once, without waiting to fill a batch.
final class ReportSender: Sendable {
    private struct Pending: Sendable {
        let item: StateReportBatchRequest.Item
        let done: @Sendable () -> Void
    }

    private let queue = Mutex<[Pending]>([])
    private let signal: AsyncStream<Void>.Continuation
    private let signals: AsyncStream<Void>
    private let ended: AsyncStream<Void>
    private let end: AsyncStream<Void>.Continuation
    /// Sends one batch to the server (`POST …/states`).
    typealias Deliver = @Sendable (StateReportBatchRequest) async throws -> StateReportBatchResponse
    private let deliverBatch: Deliver
    private let metrics: AgentMetrics
    private let logger: Logger
    /// The most reports one request carries (the server's default limit).
    static let maximumBatch = 1000

    convenience init(client: TaskyardClient, cluster: String, node: String, metrics: AgentMetrics, logger: Logger) {
        self.init(metrics: metrics, logger: logger) { batch in try await client.reportBatch(cluster: cluster, node: node, batch) }
    }

    /// A sender whose batches go to `deliver` (a test's server, without a network).
    init(metrics: AgentMetrics, logger: Logger, deliver: @escaping Deliver) {
        self.deliverBatch = deliver
        self.metrics = metrics
        self.logger = logger
        (signals, signal) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (ended, end) = AsyncStream.makeStream()
    }

    /// Queues a report; `done` runs once the server took it, refused it, or it was given up on.
    func send(_ report: TaskReport, for taskID: Int64, traceparent: String? = nil, done: @escaping @Sendable () -> Void) {
        let item = StateReportBatchRequest.Item(taskID: taskID, report: StateReportRequest(report.fitted(), traceparent: traceparent))
        queue.withLock { $0.append(Pending(item: item, done: done)) }
        signal.yield()
    }

    /// Sends batches until `finish` (or cancellation).
    func run() async {
        defer { end.finish() }
        for await _ in signals {
            while true {
                let batch = queue.withLock { queue -> [Pending] in
                    let batch = Array(queue.prefix(Self.maximumBatch))
                    queue.removeFirst(batch.count)
                    return batch
                }
                if batch.isEmpty { break }
                await deliver(batch)
            }
        }
    }

    /// Stops taking signals; a batch in flight finishes.
    func finish() { signal.finish() }

    /// Returns once `run` has ended: everything queued before `finish` was sent or given up on.
    func waitUntilDone() async {
        for await _ in ended {}
    }

    /// Sends one batch; see `send`.
    private func deliver(_ batch: [Pending]) async {
        defer { for pending in batch { pending.done() } }
        await send(batch.map(\.item))
    }

    /// Sends reports, retrying while the server is unreachable or failing. Nothing is dropped for another
    /// item's sake: a batch refused whole (413 too large, or a body the server could not read) is split in
    /// halves until each report stands alone, and a report the server refuses by itself as invalid (413 or
    /// 422) is sent once more as a plain failure that says why, so the task ends with a reason instead of
    /// waiting out its lease. A 409 (another attempt owns the task now) is final.
    private func send(_ items: [StateReportBatchRequest.Item]) async {
        var delay = Duration.milliseconds(100)
        for _ in 0..<8 {
            do {
                let answer = try await deliverBatch(StateReportBatchRequest(reports: items))
                metrics.reportBatch(size: items.count, taken: answer.results.count { $0.status == 200 })
                var resend: [StateReportBatchRequest.Item] = []
                for (item, result) in zip(items, answer.results) where result.status != 200 {
                    logger.warning("report refused", metadata: [
                        "task": "\(result.taskID)", "status": "\(result.status)",
                        "error": "\(result.error?.message ?? "")",
                    ])
                    if result.status == 422 || result.status == 413, let plain = Self.plainFailure(item, refusal: result.error?.message) {
                        resend.append(plain)
                    }
                }
                if !resend.isEmpty { await send(resend) }
                return
            } catch let failure as TaskyardClient.Failure where failure.status < 500 {
                if [400, 413, 422].contains(failure.status) {
                    if items.count > 1 {
                        await send(Array(items[..<(items.count / 2)]))
                        await send(Array(items[(items.count / 2)...]))
                        return
                    }
                    if let plain = Self.plainFailure(items[0], refusal: failure.error?.error.message ?? "HTTP \(failure.status)") {
                        await send([plain])
                        return
                    }
                }
                logger.error("report batch refused", metadata: ["tasks": "\(items.count)", "error": "\(failure)"])
                return
            } catch {
                logger.warning("report failed; retrying", metadata: ["tasks": "\(items.count)", "error": "\(error)", "in": "\(delay)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        logger.error("giving up on reports; their leases will expire", metadata: ["tasks": "\(items.count)"])
    }

    /// The report reduced to what cannot be refused: failed, no results, the participants' states and a
    /// short error naming the refusal. nil when it already is such a report.
    static func plainFailure(_ item: StateReportBatchRequest.Item, refusal: String?) -> StateReportBatchRequest.Item? {
        let report = item.report.report
        guard report.error?.hasPrefix("the server refused this report") != true else { return nil }
        let reason = cleanedReportText(refusal ?? "no reason given", maximumBytes: 500)
        let plain = TaskReport(attempt: report.attempt, lease: report.lease,
                               state: report.state == .cancelled ? .cancelled : .failed,
                               error: "the server refused this report: \(reason)",
                               participants: report.participants.map { participant in
                                   ParticipantOutcome(node: participant.node, state: participant.state,
                                                      error: participant.error.map { cleanedReportText($0, maximumBytes: 500) },
                                                      startedAt: participant.startedAt, finishedAt: participant.finishedAt)
                               })
        return StateReportBatchRequest.Item(taskID: item.taskID, report: StateReportRequest(plain, traceparent: item.report.traceparent))
    }
}
