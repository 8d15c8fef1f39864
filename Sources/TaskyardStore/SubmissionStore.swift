import Foundation
import Postgres
import TaskyardDomain
import TaskyardSecurity

/// Submitting tasks (alone, in batches, grouped with concurrent submits), and what a client asks of a
/// task afterwards: cancel, retry, delete.
public struct SubmissionStore: Sendable, TaskStorePart {
    let context: StoreContext
    let submitGroups: SubmitGroups

    // MARK: - Submitting

    /// Writes one task as `queued`. With an idempotency key already used in the cluster by the same
    /// request, returns the task created then and `created: false`, and writes nothing; used by another
    /// request, refuses it (422 `idempotency_key_reused`). Submits that arrive while others are being
    /// written share their statement and commit (`SubmitGroups`), each task still on its own: one refused
    /// submit does not refuse the others of its group.
    public func submit(_ submission: TaskSubmission, cluster: String) async throws -> (task: TaskRecord, created: Bool) {
        try submission.validate(limits: configuration.limits)
        let submitted = try await submitGroups.submit(SubmitGroups.Item(cluster: cluster, submission: submission)) { items in
            await writeGroup(items)
        }
        if submitted.created {
            let replaced = try await applyConcurrencyLimits(to: [submitted.task], cluster: cluster)[submitted.task.id]
            signal([replaced ?? submitted.task])
            activity.submitted([submitted.task])
            return (replaced ?? submitted.task, true)
        }
        return submitted
    }

    /// What `"on_limit": "cancel_in_progress"` says for just-submitted tasks: the key's oldest live tasks are
    /// cancelled until only the newest `limit` remain, the arrival among them (a running one is told to stop;
    /// the arrival is claimed when its slot comes free). Each cancel is the API's cancel, with its reason
    /// (descendants too; a task submitted `abortable: false` stays). `queue` arrivals need nothing (the claim
    /// holds them back), and `cancel_newest` ones were refused as they were inserted. Returns the arrivals
    /// this changed, by id: the older arrivals of one key in a batch, never a key's newest.
    private func applyConcurrencyLimits(to tasks: [TaskRecord], cluster: String) async throws -> [Int64: TaskRecord] {
        let arrivals = tasks.filter { $0.concurrency?.onLimit == .cancelInProgress }.map(\.id)
        guard !arrivals.isEmpty else { return [:] }
        var changed: [Int64: TaskRecord] = [:]
        for row in try await pool.query(TasksSQL.concurrencyOverflow, [cluster, arrivals]) {
            let id: Int64 = try row.decode("id")
            let reason: String = try row.decode("reason")
            // Gone, finished or not abortable since the overflow was read: it stays as it is.
            guard let cancelled = try? await cancel(cluster: cluster, taskID: id, reason: reason) else { continue }
            if arrivals.contains(id) { changed[id] = cancelled }
        }
        return changed
    }

    /// Writes a group of single submits, one statement per cluster; an item the statement skipped is
    /// written again alone, which tells an earlier request's task from a refusal and says which.
    private func writeGroup(_ items: [SubmitGroups.Item]) async -> [SubmitGroups.Outcome] {
        var outcomes = [SubmitGroups.Outcome?](repeating: nil, count: items.count)
        var groups: [String: [Int]] = [:]
        var keys: [String: Set<String>] = [:]
        var alone: [Int] = []
        for (index, item) in items.enumerated() {
            // Two submits with one key in one statement would both look inserted; the second goes alone.
            if let key = item.submission.idempotencyKey, !keys[item.cluster, default: []].insert(key).inserted {
                alone.append(index)
            } else {
                groups[item.cluster, default: []].append(index)
            }
        }
        for (cluster, indices) in groups {
            do {
                let written = try await insertGroup(indices.map { items[$0].submission }, cluster: cluster)
                for (position, index) in indices.enumerated() {
                    if let task = written[position] { outcomes[index] = .success((task, true)) } else { alone.append(index) }
                }
            } catch {
                for index in indices { outcomes[index] = .failure(error) }
            }
        }
        for index in alone {
            do {
                outcomes[index] = .success(try await submitAlone(items[index].submission, cluster: items[index].cluster))
            } catch {
                outcomes[index] = .failure(error)
            }
        }
        return outcomes.map { $0! }
    }

    /// One statement inserting the submissions that pass their checks: the task of each, by position, or
    /// nil for one that was skipped. One submission alone goes through the single-row statement.
    private func insertGroup(_ submissions: [TaskSubmission], cluster: String) async throws -> [TaskRecord?] {
        let configuration = self.configuration
        let digests = Self.digests(of: submissions)
        if submissions.count == 1, let submission = submissions.first {
            return [try await pool.withConnection { connection in
                let task = try Self.newTasks([submission], digests: digests, cluster: cluster, configuration: configuration,
                                             on: connection)[0]
                return try connection.run(SubmissionStatements.Insert(cluster: cluster, task: task)).first
            }]
        }
        let rows = try await pool.withConnection { connection in
            let tasks = try Self.newTasks(submissions, digests: digests, cluster: cluster, configuration: configuration, on: connection)
            return try connection.run(SubmissionStatements.InsertGroup(cluster: cluster, tasks: tasks))
        }
        var written = [TaskRecord?](repeating: nil, count: submissions.count)
        guard let first = rows.first else { return written }
        var inserted = try rows.map { row throws(PostgresError) in try TaskRecord(row: row) }.makeIterator()
        var next = inserted.next()
        for position in try first.decode("accepted_positions", as: [Int64].self).map({ Int($0) - 1 }) {
            guard let task = next else { break }
            // A keyed item a conflict skipped has no row; every other accepted item has the next one.
            if let key = submissions[position].idempotencyKey, task.idempotencyKey != key { continue }
            written[position] = task
            next = inserted.next()
        }
        return written
    }

    /// A submit the group statement skipped, written by itself: its task, the task an earlier request
    /// made with its key, or the refusal that says why.
    private func submitAlone(_ submission: TaskSubmission, cluster: String) async throws -> (task: TaskRecord, created: Bool) {
        if let task = try await insertGroup([submission], cluster: cluster)[0] { return (task, true) }
        return try await pool.withConnection { connection in
            // The key was used before (maybe by a request racing this one; its task is committed now)…
            if let key = submission.idempotencyKey,
               let digest = Self.digests(of: [submission])[0],
               let existing = try Self.idempotentMatches(keys: [key], digests: [digest],
                                                         fieldPrefix: { _ in "" }, cluster: cluster, on: connection).first {
                return (existing.value, false)
            }
            // …or a check failed: say which.
            try Self.checkSubmissions([submission], cluster: cluster, on: connection)
            throw TaskyardError(.conflict, code: .submissionChanged,
                                message: "a participating node or the parent task changed while the task was submitted; submit it again")
        }
    }

    /// Every check a submission must pass to be written, without writing it (a schedule's task, when the
    /// schedule is made). `fieldPrefix`: where the submission is in its request.
    public func check(_ submission: TaskSubmission, cluster: String, fieldPrefix: String) async throws {
        try submission.validate(fieldPrefix: fieldPrefix, limits: configuration.limits)
        try await pool.withConnection { connection in
            try Self.checkSubmissions([submission], cluster: cluster, fieldPrefix: fieldPrefix, on: connection)
        }
    }

    /// What tells a repeated request from a new one under the same idempotency key; nil for unkeyed items.
    private static func digests(of submissions: [TaskSubmission]) -> [String?] {
        submissions.map { submission in submission.idempotencyKey.map { _ in PayloadDigest.hex(of: submission.requestIdentity) } }
    }

    /// Submissions as the insert statements take them, with their initiators and their types' settings.
    private static func newTasks(_ submissions: [TaskSubmission], digests: [String?], cluster: String,
                                 configuration: TaskStore.Configuration,
                                 on connection: isolated PostgresConnection) throws -> [NewTask] {
        var tasks: [NewTask] = []
        for (submission, digest) in zip(submissions, digests) {
            tasks.append(NewTask(submission: submission, initiator: try initiator(for: submission, cluster: cluster, on: connection),
                                 maxAttempts: configuration.maxAttempts(for: submission),
                                 timeoutSeconds: configuration.timeoutSeconds(for: submission), idempotencyDigest: digest))
        }
        return tasks
    }

    /// Writes up to `maximumBatchSize` tasks as `queued` in one statement: all of them or none. Items may
    /// carry idempotency keys: an item whose key was used by the same request gets the task made then
    /// (and `created` is false for it); one whose key was used by another request refuses the batch.
    public func submitBatch(_ submissions: [TaskSubmission], cluster: String) async throws -> [TaskRecord] {
        try await submit(batch: submissions, cluster: cluster).map(\.task)
    }

    /// `submitBatch`, saying for each item whether it was created now or matched an earlier request's key.
    public func submit(batch submissions: [TaskSubmission], cluster: String) async throws -> [(task: TaskRecord, created: Bool)] {
        guard !submissions.isEmpty else { throw TaskyardError.invalid("tasks", "must hold at least one task") }
        guard submissions.count <= configuration.maximumBatchSize else {
            throw TaskyardError.invalid("tasks", "holds \(submissions.count) tasks; the most a batch takes is \(configuration.maximumBatchSize)")
        }
        var keys = Set<String>()
        for (index, submission) in submissions.enumerated() {
            try submission.validate(fieldPrefix: "tasks[\(index)].", limits: configuration.limits)
            if let key = submission.idempotencyKey, !keys.insert(key).inserted {
                throw TaskyardError.invalid("tasks[\(index)].idempotency_key", "is used by another task of this batch")
            }
        }
        let digests = Self.digests(of: submissions)
        let configuration = self.configuration
        let submitted = try await pool.transaction { connection in
            try Self.checkSubmissions(submissions, cluster: cluster, on: connection)
            let tasks = try Self.newTasks(submissions, digests: digests, cluster: cluster, configuration: configuration, on: connection)
            let inserted = try connection.run(SubmissionStatements.InsertBatch(cluster: cluster, tasks: tasks))
            // Inserted rows come in id order, which is the order of the items that were inserted; the others
            // are the items whose key was already used.
            let insertedKeys = Set(inserted.compactMap(\.idempotencyKey))
            let skipped = submissions.indices.filter { index in
                submissions[index].idempotencyKey.map { !insertedKeys.contains($0) } ?? false
            }
            var results = [(task: TaskRecord, created: Bool)?](repeating: nil, count: submissions.count)
            if !skipped.isEmpty {
                let existing = try Self.idempotentMatches(keys: skipped.map { submissions[$0].idempotencyKey! },
                                                          digests: skipped.map { digests[$0]! },
                                                          fieldPrefix: { "tasks[\(skipped[$0])]." },
                                                          cluster: cluster, on: connection)
                for (position, task) in existing { results[skipped[position]] = (task, false) }
            }
            var next = inserted.makeIterator()
            for index in submissions.indices where results[index] == nil {
                guard let task = next.next() else {
                    throw TaskyardError(.conflict, code: .submissionChanged,
                                        message: "a task of the batch was submitted by another request at the same time; submit the batch again")
                }
                results[index] = (task, true)
            }
            return results.map { $0! }
        }
        let created = submitted.filter(\.created).map(\.task)
        let changed = try await applyConcurrencyLimits(to: created, cluster: cluster)
        signal(created.map { changed[$0.id] ?? $0 })
        activity.submitted(created)
        return submitted.map { item in (changed[item.task.id] ?? item.task, item.created) }
    }

    /// The tasks made earlier with these keys, by position in `keys`; a key used by a different request is
    /// refused (422 `idempotency_key_reused`).
    private static func idempotentMatches(keys: [String], digests: [String], fieldPrefix: (Int) -> String,
                                          cluster: String,
                                          on connection: isolated PostgresConnection) throws -> [Int: TaskRecord] {
        var found: [Int: TaskRecord] = [:]
        for row in try connection.query(TasksSQL.byIdempotencyKey, [cluster, keys, digests]) {
            let position = Int(try row.decode("position", as: Int64.self)) - 1
            guard try row.decode("same_request", as: Bool.self) else {
                let field = fieldPrefix(position)
                throw TaskyardError(.invalid, code: .idempotencyKeyReused,
                                    message: "idempotency key \(keys[position]) was used for a different request (task \(try row.decode("id", as: Int64.self))); use a new key for a new request",
                                    field: field.isEmpty ? "Idempotency-Key" : field + "idempotency_key")
            }
            found[position] = try TaskRecord(row: row)
        }
        return found
    }

    /// The checks that need the database, for every task of a submission at once.
    private static func checkSubmissions(_ submissions: [TaskSubmission], cluster: String, fieldPrefix: String? = nil,
                                         on connection: isolated PostgresConnection) throws {
        let nodes = Array(Set(submissions.flatMap(\.participatingNodes) + submissions.compactMap(\.onFinish?.node)))
        let parents = Array(Set(submissions.compactMap(\.parentID)))
        let context = try connection.query(TasksSQL.submissionContext, [cluster, nodes, parents]).single()
        guard try context.decode("cluster_exists", as: Bool.self) else { throw unknownCluster(cluster) }
        let known = Set(try context.decode("known_nodes", as: [String].self))
        let liveParents = Set(try context.decode("live_parents", as: [Int64].self))
        let batch = submissions.count > 1
        for (index, submission) in submissions.enumerated() {
            let prefix = fieldPrefix ?? (batch ? "tasks[\(index)]." : "")
            for (position, node) in submission.participatingNodes.enumerated() where !known.contains(node) {
                throw TaskyardError(.invalid, code: .unknownNode,
                                    message: "node \(node) is not registered in cluster \(cluster)",
                                    field: "\(prefix)participating_nodes[\(position)]")
            }
            if let node = submission.onFinish?.node, !known.contains(node) {
                throw TaskyardError(.invalid, code: .unknownNode, message: "node \(node) is not registered in cluster \(cluster)",
                                    field: "\(prefix)on_finish.node")
            }
            if let parent = submission.parentID, !liveParents.contains(parent) {
                throw TaskyardError(.invalid, code: .invalidParent,
                                    message: "parent task \(parent) does not exist in cluster \(cluster), has finished, or is being cancelled",
                                    field: "\(prefix)parent_id")
            }
        }
    }

    private static func initiator(for submission: TaskSubmission, cluster: String,
                                  on connection: isolated PostgresConnection) throws -> String {
        switch submission.assign {
        case .first:
            return submission.participatingNodes[0]
        case .leastLoaded:
            let rows = try connection.query(NodesSQL.leastLoaded, [cluster, submission.participatingNodes])
            // No participant online: fall back to the first, whose tasks wait until it returns.
            return try rows.first?.decode("node") ?? submission.participatingNodes[0]
        }
    }

    // MARK: - Cancel, retry, delete

    /// Cancels a queued task at once; flags a received one for its agent to stop; and the same for every
    /// descendant. Cancelling a task already flagged returns it unchanged.
    public func cancel(cluster: String, taskID: Int64, reason: String? = nil, opaqueID: String? = nil) async throws -> TaskRecord {
        if let reason { try configuration.limits.check(reason, field: "reason", length: configuration.limits.reasonLength) }
        if let opaqueID { try TaskSubmission.validateOpaqueID(opaqueID) }
        var detail: [String: JSONValue] = [:]
        if let reason { detail["reason"] = .string(reason) }
        if let opaqueID { detail["opaque_id"] = .string(opaqueID) }
        let eventDetail: JSONValue? = detail.isEmpty ? nil : .object(detail)
        return try await pool.withConnection { connection in
            if let row = try connection.run(SubmissionStatements.Cancel(cluster: cluster, taskID: taskID, reason: reason,
                                                                        eventDetail: eventDetail)).first {
                let finishedIDs = try row.decode("finished_ids", as: [Int64].self)
                let finished = finishedIDs.map { TaskSignal.finished(cluster: cluster, task: $0) }
                let holders = try row.decode("holder_nodes", as: [String].self).map { TaskSignal.work(cluster: cluster, node: $0) }
                signals.send(Set(finished + holders))
                // Cancelled while queued: they never ran.
                activity.record(try row.decode("finished_types", as: [String].self).map {
                    .finished(cluster: cluster, type: $0, state: .cancelled, ran: nil)
                })
                return try TaskRecord(row: row)
            }
            let task = try Self.existingTask(cluster, taskID, on: connection)
            if task.state.isTerminal {
                throw TaskyardError(.conflict, code: .alreadyFinished,
                                    message: "task \(taskID) is already \(task.state.rawValue)")
            }
            if !task.abortable {
                throw TaskyardError(.conflict, code: .notAbortable,
                                    message: "task \(taskID) was submitted with abortable: false and cannot be cancelled")
            }
            return task
        }
    }

    /// Puts a failed or cancelled task back in the queue with a fresh attempt budget.
    /// `onlyFailed`: the next attempt runs only the participants without a `completed` outcome (unless the
    /// last attempt rolled back); else all of them.
    public func retry(cluster: String, taskID: Int64, onlyFailed: Bool = true, opaqueID: String? = nil) async throws -> TaskRecord {
        if let opaqueID { try TaskSubmission.validateOpaqueID(opaqueID) }
        let detail: JSONValue? = opaqueID.map { ["opaque_id": .string($0)] }
        return try await pool.withConnection { connection in
            if let task = try connection.run(SubmissionStatements.Retry(cluster: cluster, taskID: taskID, eventDetail: detail,
                                                                        onlyFailed: onlyFailed)).first {
                signal([task])
                return task
            }
            let task = try Self.existingTask(cluster, taskID, on: connection)
            let state = task.state
            throw TaskyardError(.conflict, code: .notRetryable,
                                message: "task \(taskID) is \(state.rawValue); only failed or cancelled tasks can be retried")
        }
    }

    /// Removes a finished task, its descendants and all their events.
    public func delete(cluster: String, taskID: Int64) async throws {
        try await pool.withConnection { connection in
            if !(try connection.query(TasksSQL.delete, [cluster, taskID]).isEmpty) { return }
            let task = try Self.existingTask(cluster, taskID, on: connection)
            let state = task.state
            throw TaskyardError(.conflict, code: .notFinished,
                                message: state.isTerminal
                                    ? "task \(taskID) has descendants that are still running"
                                    : "task \(taskID) is \(state.rawValue); only finished tasks can be deleted")
        }
    }
}
