import Postgres

/// Every statement that reads `task_events`. Events are written by the statements in `TasksSQL`, in the
/// same statement as the transition they record.
enum TaskEventsSQL {
    static let list = PostgresStatement("task_events.list", """
        SELECT id, task_id, from_state, to_state, node, attempt, at, detail
          FROM task_events
         WHERE cluster_id = $1 AND task_id = $2 AND id > $3
         ORDER BY id
         LIMIT $4
        """)

    /// The change feed (migration 0021): up to $4 changes of cluster $1 after position ($2 transaction, $3
    /// event), of transactions older than every one still running (`horizon`), in position order. One row
    /// at least: `horizon` and `held` (changes committed past the horizon, to read again) on each, a change
    /// per row (none: one row whose change columns are NULL).
    static let feed = PostgresStatement("task_events.feed", changes(
        held: """
            -- The newest transaction's changes (one index step back from the end, whatever the plan's
                   -- guess of how many rows lie past a horizon it cannot know).
                   coalesce((SELECT p.xid FROM task_events p WHERE p.cluster_id = $1 AND p.xid IS NOT NULL
                              ORDER BY p.xid DESC LIMIT 1) >= h.xmin, false)
            """,
        filter: "", limit: "$4"))

    /// The change feed's reading (`feed`, and each webhook subscription's): the changes of cluster $1 after
    /// position ($2 transaction, $3 event) that pass `filter` (SQL on `e`, starting with AND), at most
    /// `limit`, of transactions older than every one still running. One row at least: `horizon` and `held`
    /// on each, a change per row (none: one row whose change columns are NULL).
    static func changes(held: String, filter: String, limit: String) -> String {
        """
        WITH horizon AS MATERIALIZED (
            SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin
        )
        SELECT h.xmin::text AS horizon,
               \(held) AS held,
               e.xid::text AS xid, e.id, e.task_id, e.from_state, e.to_state, e.node, e.attempt, e.at, e.detail
          FROM horizon h LEFT JOIN LATERAL (
               SELECT * FROM task_events e
                WHERE e.cluster_id = $1 AND (e.xid, e.id) > ($2::text::xid8, $3::bigint) AND e.xid < h.xmin
                  \(filter)
                ORDER BY e.xid, e.id
                LIMIT \(limit)) e ON true
         ORDER BY e.xid, e.id
        """
    }

    static let all = [list, feed]
}
