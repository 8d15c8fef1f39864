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
    private let client: TaskyardClient
    private let cluster: String
    private let node: String
    private let logger: Logger
    /// The most reports one request carries (the server's default limit).
    static let maximumBatch = 1000

    init(client: TaskyardClient, cluster: String, node: String, logger: Logger) {
        self.client = client
        self.cluster = cluster
        self.node = node
        self.logger = logger
        (signals, signal) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a report; `done` runs once the server took it, refused it, or it was given up on.
    func send(_ report: TaskReport, for taskID: Int64, done: @escaping @Sendable () -> Void) {
        let item = StateReportBatchRequest.Item(taskID: taskID, report: StateReportRequest(report))
        queue.withLock { $0.append(Pending(item: item, done: done)) }
        signal.yield()
    }

    /// Sends batches until cancelled.
    func run() async {
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

    /// Sends one batch, retrying the whole of it while the server is unreachable or failing; an item
    /// the server refuses (409: another attempt owns the task now) is dropped alone.
    private func deliver(_ batch: [Pending]) async {
        defer { for pending in batch { pending.done() } }
        var delay = Duration.milliseconds(100)
        for _ in 0..<8 {
            do {
                let answer = try await client.reportBatch(cluster: cluster, node: node,
                                                          StateReportBatchRequest(reports: batch.map(\.item)))
                for result in answer.results where result.status != 200 {
                    logger.warning("report refused", metadata: [
                        "task": "\(result.taskID)", "status": "\(result.status)",
                        "error": "\(result.error?.message ?? "")",
                    ])
                }
                return
            } catch let failure as TaskyardClient.Failure where failure.status < 500 {
                logger.error("report batch refused", metadata: ["tasks": "\(batch.count)", "error": "\(failure)"])
                return
            } catch {
                logger.warning("report failed; retrying", metadata: ["tasks": "\(batch.count)", "error": "\(error)", "in": "\(delay)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        logger.error("giving up on reports; their leases will expire", metadata: ["tasks": "\(batch.count)"])
    }
}
