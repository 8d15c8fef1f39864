import Postgres

/// Every statement on `schedules`.
enum SchedulesSQL {
    static let columns = """
        cluster_id, id, cron, timezone, task, catch_up, paused, next_run_at, last_run_at, last_task_id, created_at,
        updated_at, revision
        """

    /// A new schedule; no row when the id is taken in the cluster.
    static let create = PostgresStatement("schedules.create", """
        INSERT INTO schedules (cluster_id, id, cron, timezone, task, catch_up, paused, next_run_at)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)
        ON CONFLICT DO NOTHING
        RETURNING \(columns)
        """)

    /// Replaces what a schedule says and when it next runs; no row for an unknown one.
    static let replace = PostgresStatement("schedules.replace", """
        UPDATE schedules
           SET cron = $3, timezone = $4, task = $5::jsonb, catch_up = $6, paused = $7, next_run_at = $8,
               updated_at = now(), revision = revision + 1
         WHERE cluster_id = $1 AND id = $2
        RETURNING \(columns)
        """)

    /// Pauses ($3 true) or resumes a schedule, with the slot it waits for next ($4).
    static let setPaused = PostgresStatement("schedules.set_paused", """
        UPDATE schedules SET paused = $3, next_run_at = $4, updated_at = now(), revision = revision + 1
         WHERE cluster_id = $1 AND id = $2
        RETURNING \(columns)
        """)

    static let get = PostgresStatement("schedules.get", """
        SELECT \(columns) FROM schedules WHERE cluster_id = $1 AND id = $2
        """)

    /// A page of the cluster's schedules by id, after $2.
    static let list = PostgresStatement("schedules.list", """
        SELECT \(columns) FROM schedules WHERE cluster_id = $1 AND id > $2 ORDER BY id LIMIT $3
        """)

    static let delete = PostgresStatement("schedules.delete", """
        DELETE FROM schedules WHERE cluster_id = $1 AND id = $2 RETURNING id
        """)

    /// The unpaused schedules whose next slot has come, most overdue first.
    static let due = PostgresStatement("schedules.due", """
        SELECT \(columns) FROM schedules WHERE NOT paused AND next_run_at <= now() ORDER BY next_run_at LIMIT $1
        """)

    /// Records the slots the leader submitted: the next slot ($4), the last one submitted ($5) and its task ($6)
    /// — only on the schedule as it read it (revision $3): a replace or a pause meanwhile wins.
    static let advance = PostgresStatement("schedules.advance", """
        UPDATE schedules
           SET next_run_at = $4, last_run_at = coalesce($5, last_run_at), last_task_id = coalesce($6, last_task_id),
               revision = revision + 1
         WHERE cluster_id = $1 AND id = $2 AND revision = $3
        RETURNING \(columns)
        """)

    static let all = [create, replace, setPaused, get, list, delete, due, advance]
}
