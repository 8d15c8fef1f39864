import Foundation
import Postgres
import TaskyardDomain
import TaskyardSecurity

/// Tasks as clients read them (one, its children, lists, trees, events) and the counts metrics read.
public struct TaskReads: Sendable, TaskStorePart {
    let context: StoreContext

    // MARK: - Reading

    public func task(cluster: String, id: Int64) async throws -> TaskRecord {
        guard let row = try await pool.query(TasksSQL.get, [cluster, id]).first else {
            throw unknownTask(cluster, id)
        }
        return try TaskRecord(row: row)
    }

    /// The tasks of `ids` that exist, in no order.
    public func tasks(cluster: String, ids: [Int64]) async throws -> [TaskRecord] {
        try TaskRecord.all(try await pool.query(TasksSQL.getMany, [cluster, ids]))
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
            let rows = try connection.run(TaskReadStatements.TreePage(cluster: cluster, root: id, after: after, rows: limit + 1))
            if rows.isEmpty, try connection.query(TasksSQL.get, [cluster, id]).isEmpty { throw unknownTask(cluster, id) }
            return rows
        }
        let tasks = capped(Array(rows.prefix(limit).map(\.task)))
        guard tasks.count < rows.count, let last = tasks.last else { return (tasks, nil) }
        return (tasks, TreeCursor(depth: rows[tasks.count - 1].depth, lastID: last.id))
    }

    /// One page of the task's history, oldest first: up to `limit` events after event id `after`.
    public func events(cluster: String, taskID: Int64, after: Int64 = 0,
                       limit: Int = 1000) async throws -> (events: [TaskEvent], next: Int64?) {
        let rows = try await pool.withConnection { connection in
            let rows = try connection.run(TaskReadStatements.EventPage(cluster: cluster, taskID: taskID, after: after, rows: limit + 1))
            if rows.isEmpty, try connection.query(TasksSQL.get, [cluster, taskID]).isEmpty {
                throw unknownTask(cluster, taskID)
            }
            return rows
        }
        let events = Array(rows.prefix(limit))
        return (events, rows.count > limit ? events.last?.id : nil)
    }

    /// A page of the cluster's change feed: up to `limit` changes after `after` (from where the feed stands
    /// now when nil: only changes to come). See `ChangeCursor` for why a position is a transaction and an
    /// event id.
    public func changes(cluster: String, after: ChangeCursor?, limit: Int = 500) async throws -> ChangePage {
        let from = after ?? ChangeCursor(transaction: 0, event: 0)
        let rowLimit = after == nil ? 0 : max(limit, 1)
        let rows = try await pool.withConnection { connection in
            try connection.query(TaskEventsSQL.feed, [cluster, String(from.transaction), from.event, rowLimit])
        }
        return try Self.changePage(rows, from: from, rowLimit: rowLimit)
    }

    /// The page the rows of a feed statement (`TaskEventsSQL.feed`, `WebhooksSQL.events`) make, read from
    /// `from` with at most `rowLimit` changes.
    static func changePage(_ rows: PostgresRows, from: ChangeCursor, rowLimit: Int) throws -> ChangePage {
        var changes: [TaskChange] = []
        var horizon = from
        var held = false
        for row in rows {
            guard let xmin = UInt64(try row.decode("horizon", as: String.self)) else { continue }
            horizon = ChangeCursor(transaction: xmin, event: 0)
            held = try row.decode("held")
            guard let xid: String = try row.decode("xid"), let transaction = UInt64(xid) else { continue }
            changes.append(TaskChange(cursor: ChangeCursor(transaction: transaction, event: try row.decode("id")),
                                      event: try TaskEvent(row: row)))
        }
        // A short page read everything before the horizon: the next read starts there.
        let next = if let last = changes.last, changes.count == rowLimit { last.cursor } else { max(horizon, from) }
        return ChangePage(changes: changes, next: next, held: held)
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
}
