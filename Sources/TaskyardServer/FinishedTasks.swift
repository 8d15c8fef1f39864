import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import TaskyardStore

/// Wakes the requests waiting for a task to finish, from PostgreSQL notifications: one listening
/// connection per server process, whatever the number of waiters.
final class FinishedTasks: Service, Sendable {
    private enum Slot {
        case pending
        case waiting(CheckedContinuation<Void, Never>)
        case fired
        case abandoned
    }

    struct Ticket: Sendable {
        let key: String
        let id: Int
    }

    private let slots = Mutex<[String: [Int: Slot]]>([:])
    private let counter = Atomic<Int>(0)
    private let database: PostgresConfiguration
    private let logger: Logger

    init(database: PostgresConfiguration, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    static func key(cluster: String, id: Int64) -> String { "\(cluster) \(id)" }

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                let listener = try await PostgresListener.start(configuration: database,
                                                                channels: [StoreStatements.taskFinishedChannel])
                await cancelWhenGracefulShutdown {
                    for await notification in listener.notifications { self.fire(notification.payload) }
                }
                await listener.close()
            } catch {
                logger.warning("cannot listen for finished tasks; waits fall back to re-checking", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    /// Takes a place in line before the task is read, so that a finish between the read and the wait
    /// is not missed.
    func register(_ key: String) -> Ticket {
        let ticket = Ticket(key: key, id: counter.add(1, ordering: .relaxed).newValue)
        slots.withLock { $0[key, default: [:]][ticket.id] = .pending }
        return ticket
    }

    /// Returns when the task finishes or `timeout` passes.
    func wait(_ ticket: Ticket, timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resumeNow = self.slots.withLock { slots -> Bool in
                            switch slots[ticket.key]?[ticket.id] {
                            case .pending?:
                                slots[ticket.key]?[ticket.id] = .waiting(continuation)
                                return false
                            default:
                                return true
                            }
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let continuation = self.slots.withLock { slots -> CheckedContinuation<Void, Never>? in
                        if case .waiting(let continuation)? = slots[ticket.key]?[ticket.id] {
                            slots[ticket.key]?[ticket.id] = .abandoned
                            return continuation
                        }
                        slots[ticket.key]?[ticket.id] = .abandoned
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
            slots[ticket.key]?[ticket.id] = nil
            if slots[ticket.key]?.isEmpty == true { slots[ticket.key] = nil }
        }
    }

    private func fire(_ key: String) {
        let waiting = slots.withLock { slots -> [CheckedContinuation<Void, Never>] in
            guard var entries = slots[key] else { return [] }
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
            slots[key] = entries
            return resumed
        }
        for continuation in waiting { continuation.resume() }
    }
}
