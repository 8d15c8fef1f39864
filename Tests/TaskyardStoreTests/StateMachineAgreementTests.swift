import Postgres
import Testing
import TaskyardDomain
import TaskyardStore
import TaskyardTestSupport

/// Holds the store's SQL guards to `TaskStateMachine.transitions`: for every action and every state a task
/// can be in, the store makes the move exactly when the table allows it, lands in the state the table
/// says, and records it in `task_events`; a refused move changes nothing at all.
@Suite("Store and state machine agree")
struct StateMachineAgreementTests {
    static let sources: [TaskState?] = [nil] + TaskState.allCases

    @Test("store transitions match the table", arguments: TaskAction.allCases)
    func agreement(action: TaskAction) async throws {
        try await TestDatabase.withStore { store in
            // One initiator per starting state, so that a claim on it can only take that task; n7 is a
            // spare online participant of every task, for reassignment.
            try await store.makeCluster(nodes: (1...7).map { "n\($0)" })
            let attempts = [.failWithAttemptsLeft, .failAfterCancel, .expireLease, .expireLeaseAfterCancel].contains(action) ? 3 : 1
            for (index, source) in Self.sources.enumerated() {
                let node = "n\(index + 1)"
                let task = try await Self.task(in: source, on: node, maxAttempts: attempts,
                                               onOffline: action == .failOffline ? .fail : .wait, store: store)
                let before = try await store.snapshot()
                let outcome = try await Self.perform(action, on: task, node: node, store: store)
                let expected = TaskStateMachine.next(from: source, on: action)
                let label = "\(source?.rawValue ?? "∅") --\(action.rawValue)-->"
                #expect(outcome?.state == expected, "\(label) landed in \(outcome?.state.rawValue ?? "refused")")
                if let outcome, expected != nil {
                    let events = try await store.reads.events(of: outcome)
                    #expect(events.last?.from == source, "\(label) event")
                    #expect(events.last?.to == expected, "\(label) event")
                } else {
                    #expect(try await store.snapshot() == before, "\(label) was refused but changed rows")
                }
            }
        }
    }

    /// A task in `state` whose initiator is `node`; nil for "no task yet".
    static func task(in state: TaskState?, on node: String, maxAttempts: Int, onOffline: OfflinePolicy,
                     store: TaskStore) async throws -> TaskRecord? {
        guard let state else { return nil }
        let task = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: [node, "n7"], maxAttempts: maxAttempts,
                                                                     onOffline: onOffline),
                                          cluster: TaskStore.cluster).task
        switch state {
        case .queued:
            return task
        case .cancelled:
            return try await store.submissions.cancel(cluster: TaskStore.cluster, taskID: task.id)
        case .received, .completed, .failed:
            let claimed = try #require(try await store.queue.claimOne(node))
            guard state != .received else { return claimed.task }
            if state == .failed {
                // Fail every attempt of the budget, so that the task ends failed rather than queued again.
                var current = claimed
                while true {
                    let reported = try await store.queue.report(TaskReport(attempt: current.attempt, lease: current.lease, state: .failed),
                                                          cluster: TaskStore.cluster, node: node, taskID: claimed.id)
                    if reported.state == .failed { return reported }
                    try await store.pool.withConnection { connection in
                        try connection.query("UPDATE tasks SET run_after = NULL WHERE id = $1", [claimed.id])
                    }
                    current = try #require(try await store.queue.claimOne(node))
                }
            }
            return try await store.queue.report(TaskReport(attempt: claimed.attempt, lease: claimed.lease, state: .completed),
                                          cluster: TaskStore.cluster, node: node, taskID: claimed.id)
        }
    }

    /// Performs `action` through the store; the resulting task, or nil when the store refused.
    static func perform(_ action: TaskAction, on task: TaskRecord?, node: String, store: TaskStore) async throws -> TaskRecord? {
        let cluster = TaskStore.cluster
        let taskID = task?.id ?? 999_999
        func refusedOnConflict(_ body: () async throws -> TaskRecord) async throws -> TaskRecord? {
            do { return try await body() } catch is TaskyardError { return nil }
        }
        /// Runs the lease expiry after making this task's lease (if it holds one) run out.
        func expire(cancelFirst: Bool) async throws -> TaskRecord? {
            try await store.pool.withConnection { connection in
                if cancelFirst {
                    try connection.query("UPDATE tasks SET cancel_requested_at = now() WHERE id = $1 AND state = 'received'", [taskID])
                }
                try connection.query("""
                    UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1 AND state = 'received'
                    """, [taskID])
            }
            return try await store.maintenance.expireLeases().first { $0.id == taskID }
        }
        switch action {
        case .submit:
            guard task == nil else { return nil }
            return try await store.submissions.submit(on: [node])
        case .refuseAtLimit:
            guard task == nil else { return nil }
            _ = try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: [node],
                                                                  concurrency: ConcurrencyKey(key: "full")), cluster: cluster)
            return try await store.submissions.submit(TaskSubmission(type: "noop", participatingNodes: [node],
                                                                     concurrency: ConcurrencyKey(key: "full", onLimit: .cancelNewest)),
                                                      cluster: cluster).task
        case .claim:
            guard let task else { return nil }
            return try await store.queue.claimOne(task.assignedNode)?.task
        case .complete, .fail, .failWithAttemptsLeft, .acknowledgeCancel:
            let state: ReportedState = action == .complete ? .completed : action == .acknowledgeCancel ? .cancelled : .failed
            // This table is about states, not leases (LeaseTests): whatever lease the task holds is made known.
            try await store.pool.withConnection { connection in
                try connection.query("UPDATE tasks SET lease_hash = sha256(convert_to('agreement', 'UTF8')) WHERE id = $1 AND lease_hash IS NOT NULL", [taskID])
            }
            return try await refusedOnConflict {
                try await store.queue.report(TaskReport(attempt: max(task?.attempt ?? 1, 1), lease: "agreement", state: state),
                                       cluster: cluster, node: node, taskID: taskID)
            }
        case .failAfterCancel:
            // The cancel is asked while the task runs; then its agent reports the failure it saw.
            try await store.pool.withConnection { connection in
                try connection.query("UPDATE tasks SET cancel_requested_at = now() WHERE id = $1 AND state = 'received'", [taskID])
                try connection.query("UPDATE tasks SET lease_hash = sha256(convert_to('agreement', 'UTF8')) WHERE id = $1 AND lease_hash IS NOT NULL", [taskID])
            }
            return try await refusedOnConflict {
                try await store.queue.report(TaskReport(attempt: max(task?.attempt ?? 1, 1), lease: "agreement", state: .failed),
                                       cluster: cluster, node: node, taskID: taskID)
            }
        case .releaseUndelivered:
            guard let task else { return nil }
            try await store.pool.withConnection { connection in
                try connection.query("UPDATE tasks SET lease_hash = sha256(convert_to('agreement', 'UTF8')) WHERE id = $1 AND lease_hash IS NOT NULL", [taskID])
            }
            return try await store.queue.releaseUndelivered([ClaimedTask(task: task, lease: "agreement")], cluster: cluster, node: node).first
        case .cancel:
            let before = try await store.snapshot()
            let result = try await refusedOnConflict { try await store.submissions.cancel(cluster: cluster, taskID: taskID) }
            return try await store.snapshot() == before ? nil : result
        case .retry:
            return try await refusedOnConflict { try await store.submissions.retry(cluster: cluster, taskID: taskID) }
        case .expireLease, .expireLeaseOnLastAttempt:
            return try await expire(cancelFirst: false)
        case .expireLeaseAfterCancel:
            return try await expire(cancelFirst: true)
        case .reassign:
            try await store.pool.withConnection { connection in
                try connection.query("UPDATE nodes SET status = 'offline' WHERE id = $1", [node])
            }
            let moved = try await store.maintenance.reassignFromOfflineNodes().first { $0.taskID == taskID }
            return try await moved.asyncMap { _ in try await store.reads.task(cluster: cluster, id: taskID) }
        case .failOffline:
            // Its initiator, which runs it too, goes offline (n7 stays online for the other tasks' claims).
            try await store.pool.withConnection { connection in
                try connection.query("UPDATE nodes SET status = 'offline' WHERE id = $1", [node])
            }
            return try await store.maintenance.failOfflineWaiters().first { $0.id == taskID }
        }
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
