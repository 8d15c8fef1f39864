import Postgres
import Synchronization

/// What a committed change means to the requests waiting on it: a node has work it can take now, or a
/// task has finished.
public enum TaskSignal: Hashable, Sendable {
    /// A task the node can claim now (submitted, retried, requeued after a lost lease or an undelivered
    /// claim, moved to it, next in its ordering key), or a cancel request for a task it holds.
    case work(cluster: String, node: String)
    /// A task reached a terminal state.
    case finished(cluster: String, task: Int64)

    /// The notification channel that carries it between server replicas.
    public var channel: String {
        switch self {
        case .work: TaskSignals.nodeWorkChannel
        case .finished: TaskSignals.taskFinishedChannel
        }
    }

    /// `<cluster_id> <node id>` or `<cluster_id> <task id>`: cluster ids hold no spaces.
    public var payload: String {
        switch self {
        case .work(let cluster, let node): "\(cluster) \(node)"
        case .finished(let cluster, let task): "\(cluster) \(task)"
        }
    }

    /// The signal a notification from another replica carries, if it is one.
    public init?(channel: String, payload: String) {
        guard let space = payload.firstIndex(of: " ") else { return nil }
        let cluster = String(payload[..<space])
        let rest = String(payload[payload.index(after: space)...])
        switch channel {
        case TaskSignals.nodeWorkChannel: self = .work(cluster: cluster, node: rest)
        case TaskSignals.taskFinishedChannel:
            guard let task = Int64(rest) else { return nil }
            self = .finished(cluster: cluster, task: task)
        default: return nil
        }
    }
}

/// Carries `TaskSignal`s from the store to whoever waits on them, after the change commits.
///
/// Statements no longer call `pg_notify`: PostgreSQL takes a cluster-wide lock at the commit of every
/// transaction that notified and holds it through the WAL flush, so notifying submits cannot share a
/// flush (pgbench, 32 clients: 10,300 tps without, 3,570 with). Instead the process that made the change
/// tells its own waiters at once (`observe`), and `publish` sends the signals on to other replicas from
/// a single connection, each round carrying everything that gathered while the previous one ran, so one
/// notifying commit serves many changes. A signal lost on the way (the publishing connection broke)
/// costs its waiters their re-check interval, as a lost notification always did.
public final class TaskSignals: Sendable {
    /// Channel of `TaskSignal.finished`.
    public static let taskFinishedChannel = "taskyard_task_finished"
    /// Channel of `TaskSignal.work`: one channel with the node in the payload, because a channel per node
    /// would not fit PostgreSQL's 63-byte identifiers with 64-character ids.
    public static let nodeWorkChannel = "taskyard_node_work"

    private struct Outbox {
        /// How many `publish` loops run (one per server; tests may run two on one store); without one
        /// nothing is kept for other replicas.
        var publishers = 0
        var pending: Set<TaskSignal> = []
        /// The loops waiting for signals, by loop.
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let observers = Mutex<[@Sendable (TaskSignal) -> Void]>([])
    private let outbox = Mutex(Outbox())
    /// The backend of the publishing connection, so a replica can tell its own signals coming back.
    private let publisherProcessID = Atomic<Int32>(0)
    /// Most signals one round publishes; the rest wait for the next round.
    private static let roundLimit = 5_000

    public init() {}

    /// Calls `body` with every signal this process sends from now on, on the sender's thread.
    public func observe(_ body: @escaping @Sendable (TaskSignal) -> Void) {
        observers.withLock { $0.append(body) }
    }

    /// Tells this process's waiters now and queues the signals for other replicas. Call after commit.
    public func send(_ signals: some Collection<TaskSignal>) {
        guard !signals.isEmpty else { return }
        let observers = self.observers.withLock { $0 }
        for signal in signals {
            for observer in observers { observer(signal) }
        }
        let waiters = outbox.withLock { outbox -> [CheckedContinuation<Void, Never>] in
            guard outbox.publishers > 0 else { return [] }
            outbox.pending.formUnion(signals)
            defer { outbox.waiters = [:] }
            return Array(outbox.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// True for a notification this process published (its waiters were told when it was sent).
    public func isOwn(_ notification: PostgresNotification) -> Bool {
        let own = publisherProcessID.load(ordering: .relaxed)
        return own != 0 && notification.senderProcessID == own
    }

    /// Publishes sent signals as notifications until the task is cancelled. Run it once per process.
    public func publish(configuration: PostgresConfiguration, onError: @Sendable (any Error) -> Void = { _ in }) async {
        outbox.withLock { $0.publishers += 1 }
        defer {
            outbox.withLock { outbox in
                outbox.publishers -= 1
                if outbox.publishers == 0 { outbox.pending = [] }
            }
        }
        let loop = Int.random(in: 0...Int.max)
        var connection: PostgresConnection?
        while !Task.isCancelled {
            let round = await nextRound(loop)
            guard !round.isEmpty else { continue }
            do {
                if connection == nil || connection!.isBroken {
                    let fresh = try await PostgresConnection.connect(configuration)
                    let processID = try await fresh.perform { connection in
                        try connection.query("SELECT pg_backend_pid() AS pid").single().decode("pid", as: Int32.self)
                    }
                    publisherProcessID.store(processID, ordering: .relaxed)
                    connection = fresh
                }
                try await connection!.perform { connection in
                    try connection.query(Self.notifyStatement, [round.map(\.channel), round.map(\.payload)])
                }
            } catch {
                await connection?.close()
                connection = nil
                onError(error)
                try? await Task.sleep(for: .seconds(1))
            }
        }
        await connection?.close()
    }

    static let notifyStatement = PostgresStatement("signals.notify", """
        SELECT count(pg_notify(channel, payload)) AS sent FROM unnest($1::text[], $2::text[]) AS s (channel, payload)
        """)

    /// The signals gathered since the last round (at most `roundLimit`), waiting for one if there are none;
    /// empty when the task is cancelled.
    private func nextRound(_ loop: Int) async -> [TaskSignal] {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = outbox.withLock { outbox -> Bool in
                    if !outbox.pending.isEmpty || Task.isCancelled { return true }
                    outbox.waiters[loop] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            outbox.withLock { $0.waiters.removeValue(forKey: loop) }?.resume()
        }
        return outbox.withLock { outbox in
            guard outbox.pending.count > Self.roundLimit else {
                defer { outbox.pending = [] }
                return Array(outbox.pending)
            }
            let round = Array(outbox.pending.prefix(Self.roundLimit))
            outbox.pending.subtract(round)
            return round
        }
    }
}
