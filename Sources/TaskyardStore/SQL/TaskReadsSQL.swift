import Foundation
import Postgres
import TaskyardDomain

/// The statements of `TaskReads`: one task, children, list pages by their index, trees, outcomes, counts.
extension TasksSQL {
    static let get = PostgresStatement("tasks.get", """
        SELECT \(columns), \(participants(of: "tasks")), \(waitingFor(of: "tasks")) FROM tasks WHERE cluster_id = $1 AND id = $2
        """)

    static let children = PostgresStatement("tasks.children", """
        SELECT \(columns), \(participants(of: "tasks")), \(waitingFor(of: "tasks")) FROM tasks WHERE cluster_id = $1 AND parent_id = $2 ORDER BY id LIMIT 1000
        """)

    /// Which index a task list reads: the one for its most selective filter, each ordered as the page is
    /// read (created_at, id), so a page is a walk of `limit` entries from the cursor, not of the history.
    enum ListPath: String, CaseIterable, Sendable {
        case created, type, node, parent, opaqueID = "opaque_id", states

        /// The path for a filter: an exact key first, then rare states, then type, then node.
        static func choose(for filter: TaskFilter) -> ListPath {
            if filter.opaqueID != nil { return .opaqueID }
            if case .task = filter.parent { return .parent }
            if let states = filter.states, !states.isEmpty, !states.contains(.completed) { return .states }
            if filter.type != nil { return .type }
            if filter.node != nil { return .node }
            return .created
        }
    }

    /// One page of a task list, oldest first by (created_at, id). Parameters: $1 cluster, $2 states,
    /// $3 type, $4 node, $5 the creation time (µs since 1970) and $11 the id the page starts after (the
    /// cursor, or `since` with id 0), $6 until, $7 roots only, $8 parent, $9 opaque id, $10 internal too,
    /// $12 limit. Every filter is also written in full so that any path gives the same rows; the path adds
    /// the equality its index starts with. Each row carries `created_micros`, for the next cursor. Run
    /// unprepared, so that each page is planned with its own values (a generic plan does not know the
    /// page size and sorts the whole range).
    static let list: [ListPath: PostgresStatement] = Dictionary(uniqueKeysWithValues: ListPath.allCases.map { path in
        (path, PostgresStatement("tasks.list.\(path.rawValue)", listSQL(path)))
    })

    private static func listSQL(_ path: ListPath) -> String {
        let filters = """
            t.cluster_id = $1
               AND ($2::text[] IS NULL OR t.state = ANY ($2::text[]))
               AND ($3::text IS NULL OR t.type = $3::text)
               AND ($4::text IS NULL OR t.assigned_node = $4::text)
               AND (t.created_at, t.id) > (coalesce(to_timestamp($5::bigint / 1000000) + ($5::bigint % 1000000) * interval '1 microsecond',
                                                    '-infinity'), $11::bigint)
               AND t.created_at < coalesce($6::timestamptz, 'infinity')
               AND (NOT $7::boolean OR t.parent_id IS NULL)
               AND ($8::bigint IS NULL OR t.parent_id = $8::bigint)
               AND ($9::text IS NULL OR t.opaque_id = $9::text)
               AND ($10::boolean OR NOT t.internal)
            """
        let select = "SELECT \(columns), \(participants(of: "t")), \(waitingFor(of: "t")), (extract(epoch FROM t.created_at) * 1000000)::bigint AS created_micros FROM tasks t"
        let page = "ORDER BY t.created_at, t.id LIMIT $12"
        switch path {
        case .states:
            // One short walk per asked state, merged: a single walk over several states is not in page order.
            return """
                SELECT l.* FROM unnest($2::text[]) AS s (state)
                 CROSS JOIN LATERAL (
                     \(select)
                      WHERE t.state = s.state AND t.state <> 'completed' AND \(filters)
                      \(page)) AS l
                 ORDER BY l.created_at, l.id LIMIT $12
                """
        case .created: return "\(select) WHERE \(filters) \(page)"
        case .type: return "\(select) WHERE t.type = $3::text AND \(filters) \(page)"
        case .node: return "\(select) WHERE t.assigned_node = $4::text AND \(filters) \(page)"
        case .parent: return "\(select) WHERE t.parent_id = $8::bigint AND \(filters) \(page)"
        case .opaqueID: return "\(select) WHERE t.opaque_id = $9::text AND \(filters) \(page)"
        }
    }

    /// Where a cursor of the bare-id form starts: the creation time of that task (or, if it is gone, of
    /// the next one).
    static let cursorOfID = PostgresStatement("tasks.cursor_of_id", """
        SELECT (extract(epoch FROM created_at) * 1000000)::bigint AS created_micros FROM tasks
         WHERE cluster_id = $1 AND id >= $2 ORDER BY id LIMIT 1
        """)

    /// Every recorded participant outcome of a task ($3: of one attempt only), oldest attempt first, then
    /// in the order of the task's participating nodes.
    static let participantOutcomes = PostgresStatement("tasks.participant_outcomes", """
        SELECT p.node, p.attempt, p.state, p.result, p.error, p.started_at, p.finished_at, p.rollback, p.decided
          FROM tasks t
          JOIN task_participants p ON p.cluster_id = t.cluster_id AND p.task_id = t.id
         WHERE t.cluster_id = $1 AND t.id = $2 AND ($3::integer IS NULL OR p.attempt = $3::integer)
         ORDER BY p.attempt, array_position(t.participating_nodes, p.node), p.node
        """)

    /// The task and all its descendants, breadth first.
    static let tree = PostgresStatement("tasks.tree", """
        WITH RECURSIVE tree AS (
            SELECT t.*, 0 AS depth FROM tasks t WHERE t.cluster_id = $1 AND t.id = $2
            UNION ALL
            SELECT c.*, tree.depth + 1 FROM tasks c
              JOIN tree ON c.cluster_id = tree.cluster_id AND c.parent_id = tree.id
        )
        SELECT \(columns), \(participants(of: "tree")), \(waitingFor(of: "tree")), depth FROM tree
         WHERE (depth, id) > ($3::integer, $4::bigint)
         ORDER BY depth, id
         LIMIT $5
        """)

    /// Live tasks by cluster, node and state, and the age of the oldest queued task that is due (the
    /// metrics' scrape): each half reads only its state's partial index (`tasks_claim_idx`,
    /// `tasks_held_idx`), never the finished history.
    static let liveCounts = PostgresStatement("tasks.live_counts", """
        SELECT cluster_id, assigned_node AS node, 'queued' AS state, count(*) AS tasks,
               extract(epoch FROM now() - min(greatest(created_at, coalesce(run_after, created_at)))
                                       FILTER (WHERE run_after IS NULL OR run_after <= now()))::float8 AS oldest_age
          FROM tasks WHERE state = 'queued' GROUP BY cluster_id, assigned_node
        UNION ALL
        SELECT cluster_id, assigned_node, 'received', count(*), NULL
          FROM tasks WHERE state = 'received' GROUP BY cluster_id, assigned_node
        ORDER BY 1, 2, 3
        """)
}

/// `TaskReads`' paged statements, as named fields.
enum TaskReadStatements {
    /// `TasksSQL.tree`: a page of a task's tree, breadth first, after a cursor.
    struct TreePage: PostgresTypedStatement {
        static var statement: PostgresStatement { TasksSQL.tree }
        var cluster: String
        var root: Int64
        var after: TreeCursor?
        /// Rows to read: a page and one more, to know whether another follows.
        var rows: Int
        var bindings: [any PostgresEncodable] { [cluster, root, after?.depth ?? -1, after?.lastID ?? 0, rows] }

        struct Row: Sendable {
            var depth: Int
            var task: TaskRecord
        }

        func decodeRow(_ row: PostgresRow) throws(PostgresError) -> Row {
            Row(depth: try row.decode("depth"), task: try TaskRecord(row: row))
        }
    }

    /// `TaskEventsSQL.list`: a page of a task's events, after an event id.
    struct EventPage: PostgresTypedStatement {
        static var statement: PostgresStatement { TaskEventsSQL.list }
        var cluster: String
        var taskID: Int64
        var after: Int64
        var rows: Int
        var bindings: [any PostgresEncodable] { [cluster, taskID, after, rows] }
        func decodeRow(_ row: PostgresRow) throws(PostgresError) -> TaskEvent { try TaskEvent(row: row) }
    }
}
