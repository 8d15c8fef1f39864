import Foundation
import Synchronization
import TaskyardDomain

/// What committed statements did to tasks, told to whoever counts it (the server's metrics) after the
/// commit: the store's one place where a task is known to have been written, claimed or ended.
public final class TaskActivity: Sendable {
    public enum Change: Sendable {
        /// A task written as queued.
        case submitted(cluster: String, type: String)
        /// A task claimed by its node: how long it waited since it could first be claimed.
        case claimed(cluster: String, type: String, waited: TimeInterval)
        /// A task that reached a terminal state: how long its last attempt ran, when it ran.
        case finished(cluster: String, type: String, state: TaskState, ran: TimeInterval?)
    }

    private let observers = Mutex<[@Sendable ([Change]) -> Void]>([])

    public init() {}

    /// Calls `body` with the changes of every statement from now on, on the caller's thread.
    public func observe(_ body: @escaping @Sendable ([Change]) -> Void) {
        observers.withLock { $0.append(body) }
    }

    func record(_ changes: [Change]) {
        guard !changes.isEmpty else { return }
        for observer in observers.withLock({ $0 }) { observer(changes) }
    }

    func submitted(_ tasks: some Sequence<TaskRecord>) {
        record(tasks.map { .submitted(cluster: $0.clusterID, type: $0.type) })
    }

    func claimed(_ tasks: some Sequence<TaskRecord>) {
        record(tasks.map { task in
            let due = max(task.createdAt, task.runAfter ?? task.createdAt)
            return .claimed(cluster: task.clusterID, type: task.type, waited: max(0, (task.receivedAt ?? due).timeIntervalSince(due)))
        })
    }

    /// The tasks among `tasks` that ended.
    func finished(_ tasks: some Sequence<TaskRecord>) {
        record(tasks.filter { $0.state.isTerminal }.map { task in
            let ran = task.receivedAt.flatMap { received in task.finishedAt.map { max(0, $0.timeIntervalSince(received)) } }
            return .finished(cluster: task.clusterID, type: task.type, state: task.state, ran: ran)
        })
    }
}
