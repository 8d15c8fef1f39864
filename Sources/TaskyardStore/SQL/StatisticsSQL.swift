import Postgres

/// The planner's statistics of the busy tables, against what they hold now.
enum StatisticsSQL {
    /// Rows the planner believes each table has (`reltuples`, -1 when never analyzed) and the live rows
    /// the statistics collector counts now, for every partition of `tasks` (the live side, each range of
    /// the finished side), `task_events` and `task_participants`: each is planned on its own statistics.
    static let tableSizes = PostgresStatement("statistics.table_sizes", """
        SELECT c.relname AS name, c.reltuples::float8 AS planned_rows, s.n_live_tup::float8 AS live_rows
          FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE c.relkind = 'r' AND c.relispartition
           AND pg_partition_root(c.oid) IN ('tasks'::regclass, 'task_events'::regclass, 'task_participants'::regclass)
         ORDER BY c.relname
        """)

    static let all = [tableSizes]
}
