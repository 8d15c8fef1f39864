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

    static let all = [list]
}
