import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import TaskyardStore

/// Wakes the requests waiting for something to happen in the database — a task to finish, work for a
/// node: at once for a change this process made (the store's `TaskSignals`), and from PostgreSQL
/// notifications for changes other replicas made (one listening connection per process, whatever the
/// number of waiters). It also runs the store's publisher, which tells the other replicas about this
/// process's changes. A signal nobody waits for costs a dictionary lookup, so a storm of thousands of
/// submits wakes each waiting poll once.
final class Wakeups: Service, Sendable {
    /// What a request waits for.
    typealias Topic = TaskSignal

    private enum Slot {
        case pending
        case waiting(CheckedContinuation<Void, Never>)
        case fired
        case abandoned
    }

    struct Ticket: Sendable {
        let topic: Topic
        let id: Int
    }

    private let slots = Mutex<[Topic: [Int: Slot]]>([:])
    /// The newest poll of each node on this server: an older one still waiting is superseded.
    private let pollSeats = Mutex<[Topic: Int]>([:])
    private let counter = Atomic<Int>(0)
    /// Streams of every topic of a cluster (the dashboard's live updates), by stream.
    private let watchers = Mutex<[Int: (cluster: String, continuation: AsyncStream<Watched>.Continuation)]>([:])

    /// What a watcher of a cluster reads: a change, or what its own timers put in — a keep-alive, a
    /// reminder to look at the change feed again.
    enum Watched: Sendable {
        case change(Topic)
        case keepAlive
        case recheck
    }
    private let waitingPolls = Atomic<Int>(0)
    private let waitingWaits = Atomic<Int>(0)
    private let database: PostgresConfiguration
    private let signals: TaskSignals
    private let logger: Logger

    init(signals: TaskSignals, database: PostgresConfiguration, logger: Logger) {
        self.signals = signals
        self.database = database
        self.logger = logger
        signals.observe { [weak self] signal in self?.announce(signal) }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await self.signals.publish(configuration: self.database) { error in
                        self.logger.warning("cannot publish wake-ups to other replicas; their waiting requests fall back to re-checking",
                                            metadata: ["error": "\(error)"])
                    }
                }
                group.addTask { await self.listen() }
            }
        }
    }

    /// Fires the topics of other replicas' notifications (this process's own come back too: skipped, as
    /// their waiters were woken when they were sent).
    private func listen() async {
        while !Task.isCancelled {
            do {
                let listener = try await PostgresListener.start(
                    configuration: database, channels: [TaskSignals.taskFinishedChannel, TaskSignals.nodeWorkChannel])
                // The stream ends when this task is cancelled.
                for await notification in listener.notifications where !signals.isOwn(notification) {
                    if let topic = Topic(channel: notification.channel, payload: notification.payload) { announce(topic) }
                }
                await listener.close()
            } catch {
                logger.warning("cannot listen for notifications; waiting requests fall back to re-checking",
                               metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    /// Makes this poll the node's current one and wakes the one before it, which then answers at once
    /// without claiming: a node has at most one waiting poll here, so an agent that gave up on a poll
    /// (a client timeout, a restart) does not leave it claiming tasks for nobody. Returns the seat.
    func takePollSeat(_ topic: Topic) -> Int {
        let seat = counter.add(1, ordering: .relaxed).newValue
        pollSeats.withLock { $0[topic] = seat }
        fire(topic)
        return seat
    }

    /// True while no newer poll of the node has taken its seat.
    func holdsPollSeat(_ topic: Topic, _ seat: Int) -> Bool {
        pollSeats.withLock { $0[topic] == seat }
    }

    /// Gives the seat up when the poll answers (a newer one may have taken it already).
    func leavePollSeat(_ topic: Topic, _ seat: Int) {
        pollSeats.withLock { seats in
            if seats[topic] == seat { seats[topic] = nil }
        }
    }

    /// Takes a place in line before the database is read, so that a notification between the read and
    /// the wait is not missed.
    func register(_ topic: Topic) -> Ticket {
        let ticket = Ticket(topic: topic, id: counter.add(1, ordering: .relaxed).newValue)
        slots.withLock { $0[topic, default: [:]][ticket.id] = .pending }
        return ticket
    }

    /// Requests waiting now: polls for work, waits for a task to finish.
    var waiting: (polls: Int, waits: Int) {
        (waitingPolls.load(ordering: .relaxed), waitingWaits.load(ordering: .relaxed))
    }

    /// Returns when the topic is notified (at once if it was since `register`) or `timeout` passes.
    func wait(_ ticket: Ticket, timeout: Duration) async {
        let isPoll = if case .work = ticket.topic { true } else { false }
        if isPoll { waitingPolls.add(1, ordering: .relaxed) } else { waitingWaits.add(1, ordering: .relaxed) }
        defer { if isPoll { waitingPolls.subtract(1, ordering: .relaxed) } else { waitingWaits.subtract(1, ordering: .relaxed) } }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resumeNow = self.slots.withLock { slots -> Bool in
                            switch slots[ticket.topic]?[ticket.id] {
                            case .pending?:
                                slots[ticket.topic]?[ticket.id] = .waiting(continuation)
                                return false
                            default:
                                return true
                            }
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let continuation = self.slots.withLock { slots -> CheckedContinuation<Void, Never>? in
                        if case .waiting(let continuation)? = slots[ticket.topic]?[ticket.id] {
                            slots[ticket.topic]?[ticket.id] = .abandoned
                            return continuation
                        }
                        slots[ticket.topic]?[ticket.id] = .abandoned
                        return nil
                    }
                    continuation?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        forget(ticket)
    }

    func forget(_ ticket: Ticket) {
        slots.withLock { slots in
            slots[ticket.topic]?[ticket.id] = nil
            if slots[ticket.topic]?.isEmpty == true { slots[ticket.topic] = nil }
        }
    }

    /// Every topic of `cluster` fired from now on (this replica's changes and other replicas'), until the
    /// stream is dropped. A slow reader loses the oldest: each topic only says "look again".
    func watch(cluster: String) -> (stream: AsyncStream<Watched>, continuation: AsyncStream<Watched>.Continuation) {
        let id = counter.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream<Watched>.makeStream(bufferingPolicy: .bufferingNewest(256))
        continuation.onTermination = { [weak self] _ in _ = self?.watchers.withLock { $0.removeValue(forKey: id) } }
        watchers.withLock { $0[id] = (cluster, continuation) }
        return (stream, continuation)
    }

    /// A change in the database, this replica's or another's: wakes its waiters and tells the watchers.
    private func announce(_ topic: Topic) {
        fire(topic)
        tellWatchers(topic)
    }

    /// Tells the watchers of a change no request waits for (a claim: its tasks are now received).
    func tellWatchers(_ topic: Topic) {
        let cluster = switch topic {
        case .work(let cluster, _), .finished(let cluster, _): cluster
        }
        for watcher in watchers.withLock({ $0.values.filter { $0.cluster == cluster } }) { watcher.continuation.yield(.change(topic)) }
    }

    /// Wakes every request waiting on `topic` now.
    func fire(_ topic: Topic) {
        let waiting = slots.withLock { slots -> [CheckedContinuation<Void, Never>] in
            guard var entries = slots[topic] else { return [] }
            var resumed: [CheckedContinuation<Void, Never>] = []
            for (id, slot) in entries {
                switch slot {
                case .waiting(let continuation):
                    resumed.append(continuation)
                    entries[id] = .fired
                case .pending:
                    entries[id] = .fired
                case .fired, .abandoned:
                    break
                }
            }
            slots[topic] = entries
            return resumed
        }
        for continuation in waiting { continuation.resume() }
    }
}
