import Foundation
import Postgres
import TaskyardDomain
import TaskyardSecurity

/// Every read and write of clusters, nodes, tasks and their history. Statements are in `SQL/`, one file
/// per table; this type binds their parameters, turns rows into domain values, and turns "no row"
/// into the precise `TaskyardError` a client needs (unknown task, stale attempt, already finished, …).
public struct TaskStore: Sendable {
    public struct Configuration: Sendable {
        /// Attempts for a task that does not ask for a number. Default 3.
        public var defaultMaxAttempts = TaskSubmission.Limits.defaultMaxAttempts
        /// Largest batch accepted by `submitBatch`. Default 1000 (the API's limit).
        public var maximumBatchSize = 1000
        /// The wait before a failed attempt runs again: base × 2^(attempt − 1), capped, and jittered
        /// down by up to half so that tasks failing together do not retry together. Default 2 s.
        public var retryBackoffBase = 2.0
        /// Default 300 s: a failing dependency gets minutes to recover, not hours.
        public var retryBackoffCap = 300.0
        /// How far ahead a queued task's `run_after` may be for it still to hold its ordering key: a retry's
        /// backoff keeps the order; a task put off further lets the ones behind it go first. The longest
        /// retry backoff.
        var orderingHoldSeconds: Double { retryBackoffCap }
        /// Leases per task type, overriding the lease a claim asks for (slow types need longer ones).
        public var leaseSecondsByType: [String: Double] = [:]
        /// Attempts per task type for tasks that do not ask for a number; other types get
        /// `defaultMaxAttempts`.
        public var maxAttemptsByType: [String: Int] = [:]
        /// Execution timeouts per task type, for tasks that do not set `timeout_seconds`.
        public var timeoutSecondsByType: [String: Int] = [:]

        /// The execution timeout of a submission: its own, else its type's, else none.
        func timeoutSeconds(for submission: TaskSubmission) -> Int? {
            submission.timeoutSeconds ?? timeoutSecondsByType[submission.type]
        }
        /// Sizes and shapes of what may be stored; checked before any statement runs.
        public var limits = InputLimits.default

        /// The attempt budget of a submission: its own, else its type's, else the default.
        func maxAttempts(for submission: TaskSubmission) -> Int {
            submission.maxAttempts ?? maxAttemptsByType[submission.type] ?? defaultMaxAttempts
        }

        public init() {}
    }

    public let pool: PostgresPool
    public let configuration: Configuration
    /// What the store's committed changes mean to waiting polls and waits, sent after each commit.
    public let signals: TaskSignals
    /// What the store's committed changes did to tasks, for the metrics that count it.
    public let activity: TaskActivity
    private let submitGroups: SubmitGroups

    public init(pool: PostgresPool, configuration: Configuration = Configuration(), signals: TaskSignals = TaskSignals(),
                activity: TaskActivity = TaskActivity()) {
        self.pool = pool
        self.configuration = configuration
        self.signals = signals
        self.activity = activity
        submitGroups = SubmitGroups(maximumGroupSize: configuration.maximumBatchSize)
    }

    /// Sends the signals of tasks as a committed statement left them: work for their node when they can be
    /// claimed now (a delayed task is found by the poll's re-check when its time comes), finished when they
    /// ended (and tells `activity` of those).
    private func signal(_ tasks: some Collection<TaskRecord>, extra: some Sequence<TaskSignal> = []) {
        activity.finished(tasks)
        var signals = Set(extra)
        let now = Date()
        for task in tasks {
            if task.state == .queued, task.runAfter.map({ $0 <= now }) ?? true {
                signals.insert(.work(cluster: task.clusterID, node: task.assignedNode))
            } else if task.state.isTerminal {
                signals.insert(.finished(cluster: task.clusterID, task: task.id))
            }
        }
        self.signals.send(signals)
    }

    // MARK: - Clusters

    public func createCluster(id: String, name: String) async throws -> Cluster {
        try Identifier.validate(id, field: "id")
        guard !name.isEmpty else { throw TaskyardError.invalid("name", "must not be empty") }
        try configuration.limits.check(name, field: "name", length: configuration.limits.nameLength)
        let rows = try await pool.query(ClustersSQL.create, [id, name])
        guard let row = rows.first else {
            throw TaskyardError(.conflict, code: .clusterExists, message: "cluster \(id) already exists", field: "id")
        }
        return try Cluster(row: row)
    }

    public func clusters() async throws -> [Cluster] {
        try await pool.query(ClustersSQL.list).map { row throws(PostgresError) in try Cluster(row: row) }
    }

    // MARK: - Nodes

    /// Registers a node, or updates its endpoint, labels and capacity (idempotent), and marks it online.
    public func registerNode(cluster: String, id: String, endpoint: String, labels: JSONValue = [:],
                             capacity: Int = 16) async throws -> Node {
        try Identifier.validate(cluster, field: "cluster_id")
        try Identifier.validate(id, field: "node_id")
        _ = try NodeEndpoint(parsing: endpoint)
        guard labels.isObject else { throw TaskyardError.invalid("labels", "must be a JSON object") }
        try configuration.limits.check(labels, field: "labels", bytes: configuration.limits.labelsBytes)
        guard capacity >= 1, capacity <= Int(Int32.max) else {
            throw TaskyardError.invalid("capacity", "must be a positive integer")
        }
        do {
            return try Node(row: try await pool.query(NodesSQL.upsert, [cluster, id, endpoint, labels, capacity]).single())
        } catch let error as PostgresError where error.isForeignKeyViolation {
            throw unknownCluster(cluster)
        }
    }

    /// A poll or heartbeat from the node: it is alive.
    public func recordHeartbeat(cluster: String, node: String) async throws {
        let rows = try await pool.query(NodesSQL.heartbeat, [cluster, node])
        guard rows.affectedRows == 1 else {
            throw TaskyardError(.notFound, code: .nodeNotFound,
                                message: "node \(node) is not registered in cluster \(cluster)")
        }
    }

    public func nodes(cluster: String) async throws -> [Node] {
        let rows = try await pool.withConnection { connection in
            try Self.requireCluster(cluster, on: connection)
            return try connection.query(NodesSQL.list, [cluster])
        }
        return try rows.map { row throws(PostgresError) in try Node(row: row) }
    }

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
            signal([submitted.task])
            activity.submitted([submitted.task])
        }
        return submitted
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
            let rows = try await pool.withConnection { connection in
                let initiator = try Self.initiator(for: submission, cluster: cluster, on: connection)
                return try connection.query(TasksSQL.insert, [
                    cluster, submission.type, submission.payload, initiator, submission.participatingNodes,
                    submission.parentID, configuration.maxAttempts(for: submission), submission.priority,
                    submission.runAfter, configuration.timeoutSeconds(for: submission), submission.orderingKey,
                    submission.idempotencyKey, submission.opaqueID, submission.affinity.rawValue, submission.abortable,
                    submission.isInternal, digests[0], submission.traceparent,
                ])
            }
            return [try rows.first.map { row throws(PostgresError) in try TaskRecord(row: row) }]
        }
        let rows = try await pool.withConnection { connection in
            var initiators: [String] = []
            for submission in submissions {
                initiators.append(try Self.initiator(for: submission, cluster: cluster, on: connection))
            }
            return try connection.query(TasksSQL.insertGroup,
                                        Self.insertParameters(submissions, cluster: cluster, initiators: initiators,
                                                              digests: digests, configuration: configuration))
        }
        var written = [TaskRecord?](repeating: nil, count: submissions.count)
        guard let first = rows.first else { return written }
        var inserted = try TaskRecord.all(rows).makeIterator()
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

    /// What tells a repeated request from a new one under the same idempotency key; nil for unkeyed items.
    private static func digests(of submissions: [TaskSubmission]) -> [String?] {
        submissions.map { submission in submission.idempotencyKey.map { _ in PayloadDigest.hex(of: submission.requestIdentity) } }
    }

    /// The parameters of `insertBatch` and `insertGroup`: arrays aligned by position.
    private static func insertParameters(_ submissions: [TaskSubmission], cluster: String, initiators: [String],
                                         digests: [String?], configuration: Configuration) -> [any PostgresEncodable] {
        [
            cluster,
            submissions.map(\.type),
            submissions.map(\.payload.text),
            initiators,
            submissions.map { $0.participatingNodes.postgresText },
            submissions.map(\.parentID),
            submissions.map { configuration.maxAttempts(for: $0) },
            submissions.map(\.priority),
            submissions.map(\.runAfter),
            submissions.map { configuration.timeoutSeconds(for: $0) },
            submissions.map(\.orderingKey),
            submissions.map(\.opaqueID),
            submissions.map(\.affinity.rawValue),
            submissions.map(\.abortable),
            submissions.map(\.isInternal),
            submissions.map(\.idempotencyKey),
            digests,
            submissions.map(\.traceparent),
        ]
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
            var initiators: [String] = []
            for submission in submissions {
                initiators.append(try Self.initiator(for: submission, cluster: cluster, on: connection))
            }
            let inserted = try TaskRecord.all(try connection.query(TasksSQL.insertBatch,
                                                                   Self.insertParameters(submissions, cluster: cluster, initiators: initiators,
                                                                                         digests: digests, configuration: configuration)))
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
        signal(created)
        activity.submitted(created)
        return submitted
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
    private static func checkSubmissions(_ submissions: [TaskSubmission], cluster: String,
                                         on connection: isolated PostgresConnection) throws {
        let nodes = Array(Set(submissions.flatMap(\.participatingNodes)))
        let parents = Array(Set(submissions.compactMap(\.parentID)))
        let context = try connection.query(TasksSQL.submissionContext, [cluster, nodes, parents]).single()
        guard try context.decode("cluster_exists", as: Bool.self) else { throw unknownCluster(cluster) }
        let known = Set(try context.decode("known_nodes", as: [String].self))
        let liveParents = Set(try context.decode("live_parents", as: [Int64].self))
        let batch = submissions.count > 1
        for (index, submission) in submissions.enumerated() {
            let prefix = batch ? "tasks[\(index)]." : ""
            for (position, node) in submission.participatingNodes.enumerated() where !known.contains(node) {
                throw TaskyardError(.invalid, code: .unknownNode,
                                    message: "node \(node) is not registered in cluster \(cluster)",
                                    field: "\(prefix)participating_nodes[\(position)]")
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

    // MARK: - Reading

    public func task(cluster: String, id: Int64) async throws -> TaskRecord {
        guard let row = try await pool.query(TasksSQL.get, [cluster, id]).first else {
            throw unknownTask(cluster, id)
        }
        return try TaskRecord(row: row)
    }

    /// The task's first 1000 direct children (sub-tasks), oldest first (the rest page through a task list
    /// filtered by parent).
    public func children(cluster: String, of id: Int64) async throws -> [TaskRecord] {
        try TaskRecord.all(try await pool.query(TasksSQL.children, [cluster, id]))
    }

    /// Every recorded participant outcome of the task (or of one attempt), oldest attempt first.
    public func participantOutcomes(cluster: String, taskID: Int64, attempt: Int? = nil) async throws -> [ParticipantRecord] {
        try await pool.withConnection { connection in
            let rows = try connection.query(TasksSQL.participantOutcomes, [cluster, taskID, attempt])
            if rows.isEmpty { _ = try Self.existingTask(cluster, taskID, on: connection) }
            return try rows.map { row throws(PostgresError) in try ParticipantRecord(row: row) }
        }
    }

    /// One page of tasks, oldest first.
    public func tasks(cluster: String, filter: TaskFilter = TaskFilter()) async throws -> TaskPage {
        try filter.validate()
        let rows = try await pool.withConnection { connection in
            var start: (micros: Int64, id: Int64)?
            if let cursor = filter.after {
                var micros = cursor.createdMicros
                if micros == nil {
                    micros = try connection.query(TasksSQL.cursorOfID, [cluster, cursor.lastID]).first?.decode("created_micros")
                }
                // No task at or after that id: nothing follows it (9999-12-31, the last time a task can have).
                start = (micros ?? 253_402_300_799_999_999, cursor.lastID)
            }
            let query = Self.listQuery(cluster: cluster, filter: filter, after: start)
            // Planned for its values each time (not prepared): a generic plan, with the page size and the
            // filters unknown, reads the whole range and sorts it.
            let rows = try connection.query(query.statement.sql, query.parameters)
            if rows.isEmpty { try Self.requireCluster(cluster, on: connection) }
            return rows
        }
        let tasks = capped(Array(try TaskRecord.all(rows).prefix(filter.limit)))
        var next: TaskCursor?
        if tasks.count < rows.count {
            next = TaskCursor(createdMicros: try rows[tasks.count - 1].decode("created_micros"), lastID: tasks[tasks.count - 1].id)
        }
        return TaskPage(tasks: tasks, next: next)
    }

    /// The statement and parameters of a list page starting after `after` (creation time in µs, id;
    /// nil: from the first task), one more row than the page holds. Public for the plan tests and the bench.
    public static func listQuery(cluster: String, filter: TaskFilter,
                                 after: (micros: Int64, id: Int64)?) -> (statement: PostgresStatement, parameters: [any PostgresEncodable]) {
        let parentID: Int64? = if case .task(let id) = filter.parent { id } else { nil }
        let rootsOnly: Bool = if case .roots = filter.parent { true } else { false }
        // `since` is a lower bound like the cursor's: created_at ≥ since is (created_at, id) > (since, 0).
        var start = filter.since.map { (micros: Int64(($0.timeIntervalSince1970 * 1_000_000).rounded(.up)), id: Int64(0)) }
        if let after, start.map({ (after.micros, after.id) > ($0.micros, $0.id) }) ?? true { start = after }
        return (TasksSQL.list[TasksSQL.ListPath.choose(for: filter)]!, [
            cluster, filter.states.map { $0.map(\.rawValue) }, filter.type, filter.node, start?.micros,
            filter.until, rootsOnly, parentID, filter.opaqueID, filter.includeInternal,
            start?.id ?? 0, filter.limit + 1,
        ])
    }

    /// The task and all its descendants, breadth first.
    /// One page of the tree: up to `limit` tasks after `after` (a cursor from the previous page), capped
    /// by bytes like task lists; `next` is nil on the last page.
    public func tree(cluster: String, id: Int64, after: TreeCursor? = nil,
                     limit: Int = 1000) async throws -> (tasks: [TaskRecord], next: TreeCursor?) {
        let rows = try await pool.withConnection { connection in
            let rows = try connection.query(TasksSQL.tree, [cluster, id, after?.depth ?? -1, after?.lastID ?? 0, limit + 1])
            if rows.isEmpty, try connection.query(TasksSQL.get, [cluster, id]).isEmpty { throw unknownTask(cluster, id) }
            return rows
        }
        let depths = try rows.map { row throws(PostgresError) in try row.decode("depth", as: Int.self) }
        let tasks = capped(Array(try TaskRecord.all(rows).prefix(limit)))
        guard tasks.count < rows.count, let last = tasks.last else { return (tasks, nil) }
        return (tasks, TreeCursor(depth: depths[tasks.count - 1], lastID: last.id))
    }

    /// One page of the task's history, oldest first: up to `limit` events after event id `after`.
    public func events(cluster: String, taskID: Int64, after: Int64 = 0,
                       limit: Int = 1000) async throws -> (events: [TaskEvent], next: Int64?) {
        let rows = try await pool.withConnection { connection in
            let rows = try connection.query(TaskEventsSQL.list, [cluster, taskID, after, limit + 1])
            if rows.isEmpty, try connection.query(TasksSQL.get, [cluster, taskID]).isEmpty {
                throw unknownTask(cluster, taskID)
            }
            return rows
        }
        let events = try rows.prefix(limit).map { row throws(PostgresError) in try TaskEvent(row: row) }
        return (events, rows.count > limit ? events.last?.id : nil)
    }

    /// The task's whole history, oldest first.
    public func events(cluster: String, taskID: Int64) async throws -> [TaskEvent] {
        var all: [TaskEvent] = []
        var after: Int64 = 0
        while true {
            let page = try await events(cluster: cluster, taskID: taskID, after: after)
            all += page.events
            guard let next = page.next else { return all }
            after = next
        }
    }

    /// A page cut short once its payloads, results and errors pass `page_bytes` (never below one task):
    /// a thousand large payloads are a response no client wants at once.
    private func capped(_ tasks: [TaskRecord]) -> [TaskRecord] {
        var bytes = 0
        guard let cut = tasks.firstIndex(where: { task in
            bytes += task.payload.bytes.count + (task.result?.bytes.count ?? 0) + (task.error?.utf8.count ?? 0) + 512
            return bytes > configuration.limits.pageBytes
        }) else { return tasks }
        return Array(tasks.prefix(max(cut, 1)))
    }

    // MARK: - The agent's side

    /// A poll, in one statement: records that the node is alive, takes up to `limit` of its queued tasks
    /// whose `run_after` has passed, best priority first, marking them received with the next attempt
    /// number and a lease of `leaseSeconds`, and lists the tasks it holds whose cancel was requested.
    public func poll(cluster: String, node: String, limit: Int, leaseSeconds: Double,
                     recordHeartbeat: Bool = true) async throws -> PollOutcome {
        guard limit >= 1 else { throw TaskyardError.invalid("limit", "must be at least 1") }
        guard leaseSeconds > 0 else { throw TaskyardError.invalid("lease", "must be positive") }
        let overrides = configuration.leaseSecondsByType.sorted { $0.key < $1.key }
        let rows = try await pool.query(TasksSQL.poll, [
            cluster, node, limit, leaseSeconds, overrides.map(\.key), overrides.map(\.value), recordHeartbeat,
            configuration.orderingHoldSeconds,
        ])
        guard let header = rows.first else { throw PostgresError(kind: .server, message: "poll returned no row") }
        guard try header.decode("node_found", as: Bool.self) else {
            throw TaskyardError(.notFound, code: .nodeNotFound,
                                message: "node \(node) is not registered in cluster \(cluster)")
        }
        var outcome = PollOutcome(tasks: [], cancel: try header.decode("cancel"))
        for row in rows where try row.decode("id", as: Int64?.self) != nil {
            outcome.tasks.append(ClaimedTask(task: try TaskRecord(row: row), lease: try row.decode("lease")))
        }
        activity.claimed(outcome.tasks.map(\.task))
        return outcome
    }

    /// Puts back claims whose answer never reached the agent: queued at once, their attempts given back.
    /// A claim under another lease (already reported, expired and claimed again) is left alone.
    @discardableResult
    public func releaseUndelivered(_ claims: [ClaimedTask], cluster: String, node: String) async throws -> [TaskRecord] {
        guard !claims.isEmpty else { return [] }
        let released = try TaskRecord.all(try await pool.query(TasksSQL.releaseUndelivered, [cluster, node, claims.map(\.task.id), claims.map(\.lease)]))
        signal(released)
        return released
    }

    /// The tasks of a poll, without the cancel requests.
    public func claim(cluster: String, node: String, limit: Int, leaseSeconds: Double) async throws -> [ClaimedTask] {
        try await poll(cluster: cluster, node: node, limit: limit, leaseSeconds: leaseSeconds).tasks
    }

    /// The backoff before attempt `attempt + 1` of a task that failed at `attempt`.
    public func retryBackoff(afterAttempt attempt: Int) -> Double {
        let exponential = configuration.retryBackoffBase * pow(2, Double(max(0, min(attempt - 1, 30))))
        let capped = min(configuration.retryBackoffCap, exponential)
        return capped * Double.random(in: 0.5...1.0)
    }

    /// Ends a received task as its agent reports, recording each participant's outcome in `task_participants`.
    /// Refused with a conflict, changing nothing, unless the task is received by `node` at `report.attempt`.
    public func report(_ report: TaskReport, cluster: String, node: String, taskID: Int64) async throws -> TaskRecord {
        try await reportBatch([(taskID, report)], cluster: cluster, node: node)[0].get()
    }

    /// Many reports in one statement. Each item stands alone: one that is invalid or stale gets its own
    /// error and changes nothing, and the others are written. Outcomes are in the order of `reports`.
    public func reportBatch(_ reports: [(taskID: Int64, report: TaskReport)], cluster: String,
                            node: String) async throws -> [Result<TaskRecord, TaskyardError>] {
        var outcomes = [Result<TaskRecord, TaskyardError>?](repeating: nil, count: reports.count)
        var acceptedItems: [Int] = []
        var ids = Set<Int64>()
        for (index, item) in reports.enumerated() {
            do {
                try item.report.validate(limits: configuration.limits)
                guard ids.insert(item.taskID).inserted else {
                    throw TaskyardError.invalid("task_id", "task \(item.taskID) is reported twice in this batch")
                }
                acceptedItems.append(index)
            } catch let error as TaskyardError {
                outcomes[index] = .failure(error)
            }
        }
        let accepted = acceptedItems
        // Stored texts hold no control characters: an agent's error must not become a terminal's escape.
        let items = accepted.map { (taskID: reports[$0].taskID, report: reports[$0].report.withoutControlCharacters()) }
        var participantItems: [Int64] = []
        var participants: [ParticipantOutcome] = []
        // Stamped here rather than by the database, and to the microsecond as stored, so that the task
        // this answers with shows the times stored.
        func stored(_ date: Date) -> Date { Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000) }
        let now = Date()
        let reported = items.map { item in
            item.report.participants.map { outcome in
                var outcome = outcome
                outcome.startedAt = outcome.startedAt.map(stored)
                outcome.finishedAt = stored(outcome.finishedAt ?? now)
                return outcome
            }
        }
        for (position, outcomes) in reported.enumerated() {
            participantItems += Array(repeating: Int64(position + 1), count: outcomes.count)
            participants += outcomes
        }
        let details: [String?] = items.map { item in
            var detail: [String: JSONValue] = [:]
            if let error = item.report.error { detail["error"] = .string(error) }
            let failedNodes = item.report.participants.filter { $0.state != .completed }.map { JSONValue.string($0.node) }
            if !failedNodes.isEmpty { detail["unsuccessful_participants"] = .array(failedNodes) }
            return detail.isEmpty ? nil : JSONValue.object(detail).jsonText
        }
        let parameters: [any PostgresEncodable] = [
            cluster, node, items.map(\.taskID), items.map(\.report.attempt), items.map(\.report.state.rawValue),
            items.map { $0.report.result?.text }, items.map(\.report.error), details,
            items.map { retryBackoff(afterAttempt: $0.report.attempt) },
            participantItems, participants.map(\.node), participants.map(\.state.rawValue),
            participants.map { $0.result?.text }, participants.map(\.error), participants.map(\.startedAt),
            participants.map(\.finishedAt), items.map(\.report.lease),
            participants.map { $0.rollback?.json.jsonText }, participants.map(\.decided),
        ]
        let (written, current, leaseMatches) = try await pool.withConnection { connection in
            var written: [Int: TaskRecord] = [:]
            var unblocked: [TaskSignal] = []
            if !items.isEmpty {
                for row in try connection.query(TasksSQL.report, parameters, settings: Self.robustPlan) {
                    let position = Int(try row.decode("item", as: Int64.self)) - 1
                    var task = try TaskRecord(row: row)
                    // The statement's snapshot holds the outcomes recorded before it: add the ones it wrote.
                    let nodes = Set(reported[position].map(\.node))
                    task.participants = task.participants.filter { !nodes.contains($0.outcome.node) }
                        + reported[position].map { ParticipantRecord(attempt: task.attempt, outcome: $0) }
                    written[accepted[position]] = task
                    for node in try row.decode("unblocked_nodes", as: [String].self) {
                        unblocked.append(.work(cluster: cluster, node: node))
                    }
                }
            }
            signal(written.values, extra: unblocked)
            // The items that changed nothing: say why, from their tasks as they stand.
            let refused = accepted.filter { written[$0] == nil }
            guard !refused.isEmpty else { return (written, [] as [TaskRecord], [:] as [Int64: Bool]) }
            let (current, leaseMatches) = try Self.claimsAsTheyStand(
                refused.map { (reports[$0].taskID, reports[$0].report.lease) }, cluster: cluster, on: connection)
            return (written, current, leaseMatches)
        }
        for (index, task) in written { outcomes[index] = .success(task) }
        var byID: [Int64: TaskRecord] = [:]
        for task in current { byID[task.id] = task }
        for index in accepted where outcomes[index] == nil {
            let (taskID, report) = reports[index]
            let claim = Self.claimRefusal(taskID: taskID, attempt: report.attempt, task: byID[taskID], cluster: cluster,
                                          node: node, leaseMatches: leaseMatches[taskID] != nil)
            outcomes[index] = .failure(claim ?? Self.refusal(of: report, task: byID[taskID]!, limits: configuration.limits,
                                                             rollingBack: leaseMatches[taskID] == true))
        }
        return outcomes.map { $0! }
    }

    /// The tasks with these ids as they stand, and of those whose lease is the one given, whether rollback
    /// grants went out for their current attempt: what explains a request under a claim that changed nothing.
    private static func claimsAsTheyStand(_ claims: [(taskID: Int64, lease: String)], cluster: String,
                                          on connection: isolated PostgresConnection) throws -> ([TaskRecord], [Int64: Bool]) {
        let current = try TaskRecord.all(try connection.query(TasksSQL.getMany, [cluster, claims.map(\.taskID)]))
        var leaseMatches: [Int64: Bool] = [:]
        for row in try connection.query(TasksSQL.leaseMatches, [cluster, claims.map(\.taskID), claims.map(\.lease)]) {
            leaseMatches[try row.decode("id", as: Int64.self)] = try row.decode("rolling_back", as: Bool.self)
        }
        return (current, leaseMatches)
    }

    /// Why a request under a claim (a report, a request for rollback grants) changed nothing, when the claim
    /// is not the node's any more; nil when it still is.
    private static func claimRefusal(taskID: Int64, attempt: Int, task: TaskRecord?, cluster: String, node: String,
                                     leaseMatches: Bool) -> TaskyardError? {
        guard let task else { return unknownTask(cluster, taskID) }
        if task.state != .received {
            return TaskyardError(.conflict, code: task.state.isTerminal ? .alreadyFinished : .notReceived,
                                 message: "task \(taskID) is \(task.state.rawValue), not received; the request changes nothing")
        }
        if task.assignedNode != node {
            return TaskyardError(.conflict, code: .wrongNode,
                                 message: "task \(taskID) is held by node \(task.assignedNode), not \(node)")
        }
        if task.attempt != attempt {
            return TaskyardError(.conflict, code: .staleAttempt,
                                 message: "task \(taskID) is at attempt \(task.attempt); a request for attempt \(attempt) changes nothing")
        }
        guard leaseMatches else {
            return TaskyardError(.conflict, code: .staleLease,
                                 message: "the lease does not match the claim of task \(taskID) at attempt \(task.attempt); the request changes nothing",
                                 field: "lease")
        }
        return nil
    }

    /// Why a report under the node's own claim changed nothing.
    private static func refusal(of report: TaskReport, task: TaskRecord, limits: InputLimits, rollingBack: Bool) -> TaskyardError {
        do {
            try report.validate(participatingNodes: task.participatingNodes, limits: limits)
        } catch {
            return error
        }
        if rollingBack, report.state == .completed {
            return TaskyardError(.conflict, code: .rollingBack,
                                 message: "rollback grants were issued for attempt \(task.attempt) of task \(task.id): it can only be reported failed or cancelled",
                                 field: "state")
        }
        return TaskyardError(.conflict, code: .reportRefused, message: "task \(task.id) changed while the report was written; the report changes nothing")
    }

    /// Rollback grants for an attempt the node holds: marks it as rolling back (from now on it can only be
    /// reported failed or cancelled) and returns the task, so that the caller signs a rollback grant for
    /// each of `nodes`. Refused as a report would be when the claim is not the node's any more; 422 when a
    /// node is not a participant.
    public func grantRollback(cluster: String, node: String, taskID: Int64, attempt: Int, lease: String,
                              nodes: [String]) async throws -> TaskRecord {
        guard attempt >= 1, attempt <= Int(Int32.max) else {
            throw TaskyardError.invalid("attempt", "must be the attempt the task was claimed with (1 or more)")
        }
        try TaskReport.checkLease(lease, field: "lease")
        guard TaskSubmission.Limits.participatingNodes.contains(nodes.count) else {
            throw TaskyardError.invalid("nodes", "must name 1 to \(TaskSubmission.Limits.participatingNodes.upperBound) participants")
        }
        guard Set(nodes).count == nodes.count else { throw TaskyardError.invalid("nodes", "names a node twice") }
        return try await pool.withConnection { connection in
            if let row = try connection.query(TasksSQL.grantRollback, [cluster, node, taskID, attempt, lease, nodes]).first {
                return try TaskRecord(row: row)
            }
            let (current, leaseMatches) = try Self.claimsAsTheyStand([(taskID, lease)], cluster: cluster, on: connection)
            if let refusal = Self.claimRefusal(taskID: taskID, attempt: attempt, task: current.first, cluster: cluster, node: node,
                                               leaseMatches: leaseMatches[taskID] != nil) {
                throw refusal
            }
            let strangers = nodes.filter { !current[0].participatingNodes.contains($0) }
            guard strangers.isEmpty else {
                throw TaskyardError.invalid("nodes", "\(strangers.joined(separator: ", ")) \(strangers.count == 1 ? "is" : "are") not a participant of task \(taskID)")
            }
            throw TaskyardError(.conflict, code: .reportRefused, message: "task \(taskID) changed while the request was written; it changes nothing")
        }
    }

    /// For the statements that join a batch of items with the rows of `tasks_live` they lock (reports,
    /// heartbeats): no nested loops. The live side's statistics lag its size by a burst (autovacuum finds
    /// it empty between bursts); planned as one row, a report of 1,000 items joined them in a nested loop
    /// over all of them, 1,000,000 comparisons (measured: 400 of a report's 550 ms). Hash joins do not
    /// care how wrong the estimate is. Small reports too: the planner's nested loop for three items probed the node's held-task index once
    /// per item, over every task the node holds, and under a bulk drain took 4 to 25 s (measured with
    /// auto_explain, 2026-12-02).
    static let robustPlan = ["enable_nestloop = off"]

    /// Ids of the tasks the node holds whose cancel was requested.
    public func cancelRequested(cluster: String, node: String) async throws -> [Int64] {
        try await pool.query(TasksSQL.cancelRequested, [cluster, node]).map { row throws(PostgresError) in try row.decode("id") }
    }

    /// Renews the leases of the tasks the node still holds at the attempts it names.
    public func renewLeases(cluster: String, node: String, tasks: [HeldTask], leaseSeconds: Double) async throws -> LeaseRenewal {
        for (index, task) in tasks.enumerated() {
            guard task.id >= 1 else { throw TaskyardError.invalid("tasks[\(index)].id", "must be a task id (1 or more)") }
            guard task.attempt >= 1, task.attempt <= Int(Int32.max) else {
                throw TaskyardError.invalid("tasks[\(index)].attempt", "must be the attempt the task was claimed with (1 or more)")
            }
            try TaskReport.checkLease(task.lease, field: "tasks[\(index)].lease")
            if let progress = task.progress {
                try configuration.limits.check(progress, field: "tasks[\(index)].progress", bytes: configuration.limits.resultBytes)
            }
        }
        guard !tasks.isEmpty else { return LeaseRenewal(cancel: try await cancelRequested(cluster: cluster, node: node), lost: []) }
        let parameters: [any PostgresEncodable] = [
            cluster, node, tasks.map(\.id), tasks.map(\.attempt), tasks.map { $0.progress?.jsonText }, leaseSeconds,
            tasks.map(\.lease),
        ]
        let rows = try await pool.withConnection { connection in
            try connection.query(TasksSQL.renewLeases, parameters, settings: Self.robustPlan)
        }
        var renewal = LeaseRenewal(cancel: [], lost: [])
        for row in rows {
            let id: Int64 = try row.decode("id")
            if !(try row.decode("held", as: Bool.self)) { renewal.lost.append(id) }
            if try row.decode("cancel", as: Bool.self) { renewal.cancel.append(id) }
        }
        return renewal
    }

    // MARK: - Metrics

    public struct LiveCount: Sendable, Equatable {
        public var cluster: String
        public var node: String
        public var state: TaskState
        public var count: Int
        /// Seconds since the oldest due task of a queued count could first be claimed.
        public var oldestQueuedAge: Double?
    }

    /// Queued and received tasks by cluster and node, from the partial indexes of live tasks.
    public func liveTaskCounts() async throws -> [LiveCount] {
        try await pool.query(TasksSQL.liveCounts).map { row throws(PostgresError) in
            LiveCount(cluster: try row.decode("cluster_id"), node: try row.decode("node"),
                      state: try row.decode("state"), count: try row.decode("tasks"), oldestQueuedAge: try row.decode("oldest_age"))
        }
    }

    /// Registered nodes by cluster and status (`online`, `offline`).
    public func nodeCounts() async throws -> [(cluster: String, status: String, count: Int)] {
        try await pool.query(NodesSQL.countsByStatus).map { row throws(PostgresError) in
            (try row.decode("cluster_id"), try row.decode("status"), try row.decode("nodes"))
        }
    }

    // MARK: - Maintenance

    /// Ends up to `limit` received tasks whose lease ran out: queued again while attempts remain, failed
    /// after the last, cancelled when a cancel was asked. Returns them as they are now.
    public func expireLeases(limit: Int = 500) async throws -> [TaskRecord] {
        let ended = try TaskRecord.all(try await pool.query(TasksSQL.expireLeases, [limit]))
        signal(ended)
        return ended
    }

    /// Marks offline the nodes not seen for `seconds`; returns them as (cluster, node).
    public func markOfflineNodes(notSeenFor seconds: Double) async throws -> [(cluster: String, node: String)] {
        try await pool.query(NodesSQL.markOffline, [seconds]).map { row throws(PostgresError) in
            (try row.decode("cluster_id", as: String.self), try row.decode("id", as: String.self))
        }
    }

    /// Moves up to `limit` queued tasks off offline nodes (affinity any) to an online participant.
    public func reassignFromOfflineNodes(limit: Int = 500) async throws -> [(taskID: Int64, from: String, to: String)] {
        let rows = try await pool.query(TasksSQL.reassignFromOfflineNodes, [limit])
        signals.send(Set(try rows.map { row throws(PostgresError) in
            TaskSignal.work(cluster: try row.decode("cluster_id"), node: try row.decode("new_node"))
        }))
        return try rows.map { row throws(PostgresError) in
            (try row.decode("id", as: Int64.self), try row.decode("old_node", as: String.self),
             try row.decode("new_node", as: String.self))
        }
    }

    /// Deletes up to `limit` finished root tasks older than `seconds` (optionally only of `states`, or of
    /// one cluster) with their descendants and history; returns how many roots went. Roots with ids below
    /// `sparing` wait `grace` seconds more (retention drops their ranges whole).
    public func pruneFinished(olderThan seconds: Double, states: [TaskState]? = nil, cluster: String? = nil,
                              limit: Int = 500, sparing: Int64? = nil, grace: Double = 0) async throws -> Int {
        try await pool.query(TasksSQL.prune, [seconds, states.map { $0.map(\.rawValue) }, limit, cluster, sparing, grace]).count
    }

    /// ANALYZEs `tasks` and `task_events` when they have grown past twice what the planner believes
    /// (or it never looked): a queue table grows from nothing in seconds, and until autovacuum's next
    /// round (a minute apart) every new plan — prepared statements, foreign-key checks — would treat it
    /// as tiny and scan it whole. Returns the tables analyzed.
    public func refreshStaleStatistics(minimumRows: Double = 1000) async throws -> [String] {
        try await pool.withConnection { connection in
            var analyzed: [String] = []
            for row in try connection.query(StatisticsSQL.tableSizes) {
                let name: String = try row.decode("name")
                let planned: Double = try row.decode("planned_rows")
                let live: Double = try row.decode("live_rows")
                guard live >= minimumRows, planned < 0 || live > 2 * max(planned, minimumRows / 2) else { continue }
                // The name comes from the statement's fixed list of this schema's tables, not from input.
                try connection.execute("ANALYZE " + (try connection.quoteIdentifier(name)))
                analyzed.append(name)
            }
            return analyzed
        }
    }

    // MARK: - Schema

    /// Reads a row of `tasks`: fails (after the lock timeout) while someone holds the table locked.
    public func probeTasks() async throws {
        _ = try await pool.query(TasksSQL.probe)
    }

    /// Names of the bundled migrations the database has not applied.
    public func pendingMigrations() async throws -> [String] {
        let applied = Set(try await pool.withConnection { connection in
            try connection.query(SchemaMigrationsSQL.applied)
                .map { row throws(PostgresError) in try row.decode("version", as: Int.self) }
        })
        return try Migration.bundled().filter { !applied.contains($0.version) }.map(\.name)
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
            if let row = try connection.query(TasksSQL.cancel, [cluster, taskID, reason, eventDetail]).first {
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
    public func retry(cluster: String, taskID: Int64, opaqueID: String? = nil) async throws -> TaskRecord {
        if let opaqueID { try TaskSubmission.validateOpaqueID(opaqueID) }
        let detail: JSONValue? = opaqueID.map { ["opaque_id": .string($0)] }
        return try await pool.withConnection { connection in
            if let row = try connection.query(TasksSQL.retry, [cluster, taskID, detail]).first {
                let task = try TaskRecord(row: row)
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

    // MARK: - Helpers

    /// The task as it stands, to explain why a guarded statement changed nothing; 404 when it is gone.
    private static func existingTask(_ cluster: String, _ id: Int64,
                                     on connection: isolated PostgresConnection) throws -> TaskRecord {
        guard let row = try connection.query(TasksSQL.get, [cluster, id]).first else { throw unknownTask(cluster, id) }
        return try TaskRecord(row: row)
    }

    private static func requireCluster(_ cluster: String, on connection: isolated PostgresConnection) throws {
        guard try connection.query(ClustersSQL.exists, [cluster]).single().decode("found", as: Bool.self) else {
            throw unknownCluster(cluster)
        }
    }
}

func unknownCluster(_ cluster: String) -> TaskyardError {
    TaskyardError(.notFound, code: .clusterNotFound, message: "cluster \(cluster) does not exist")
}

func unknownTask(_ cluster: String, _ id: Int64) -> TaskyardError {
    TaskyardError(.notFound, code: .taskNotFound, message: "task \(id) does not exist in cluster \(cluster)")
}
