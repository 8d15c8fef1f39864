import Postgres

/// Every statement on `task_stats` and `task_stats_positions` (migration 0026).
enum StatsSQL {
    /// Every cluster's rollup position (a cluster without one starts at the feed's beginning).
    static let positions = PostgresStatement("stats.positions", """
        WITH added AS (
            INSERT INTO task_stats_positions (cluster_id) SELECT id FROM clusters ON CONFLICT DO NOTHING
            RETURNING cluster_id, cursor_xid, cursor_event
        )
        SELECT cluster_id, cursor_xid::text AS cursor_xid, cursor_event FROM task_stats_positions
        UNION ALL
        SELECT cluster_id, cursor_xid::text, cursor_event FROM added
        ORDER BY cluster_id
        """)

    /// Up to $4 of cluster $1's changes to a final state after position ($2 transaction, $3 event), in feed
    /// order (`TaskEventsSQL.changes`'s rules), each with what the chart counts of its task while its row is
    /// there: type, initiating node, and the pick-up and run times (ms) of its last attempt.
    static let finished = PostgresStatement("stats.finished", """
        WITH page AS (
            \(TaskEventsSQL.changes(held: "false", filter: "AND e.to_state IN ('completed', 'failed', 'cancelled')", limit: "$4"))
        )
        SELECT p.*, t.type AS task_type, t.assigned_node AS task_node,
               extract(epoch FROM t.received_at - greatest(t.created_at, coalesce(t.run_after, t.created_at)))::float8 * 1000
                   AS pickup_ms,
               extract(epoch FROM t.finished_at - t.received_at)::float8 * 1000 AS run_ms
          FROM page p LEFT JOIN tasks t ON t.cluster_id = $1 AND t.id = p.task_id
         ORDER BY p.xid::xid8, p.id
        """)

    /// Adds buckets to cluster $1's rows and moves its position from ($2, $3) to ($4, $5) in one statement —
    /// only from the position it was read at: a second leader for a moment counts nothing twice. Per bucket:
    /// $6 scopes, $7 names, $14 grains, $8 starts, $9 completed, $10 failed, $11 cancelled, $12 pick-up and
    /// $13 run histograms (array literals). Returns whether the position moved.
    static let record = PostgresStatement("stats.record", """
        WITH moved AS (
            UPDATE task_stats_positions SET cursor_xid = $4::text::xid8, cursor_event = $5
             WHERE cluster_id = $1 AND cursor_xid = $2::text::xid8 AND cursor_event = $3
            RETURNING cluster_id
        ), added AS (
            INSERT INTO task_stats AS s (cluster_id, scope, name, grain, start, completed, failed, cancelled, pickup, run)
            SELECT $1, b.scope, b.name, b.grain, b.start, b.completed, b.failed, b.cancelled, b.pickup::integer[], b.run::integer[]
              FROM unnest($6::text[], $7::text[], $14::integer[], $8::timestamptz[], $9::integer[], $10::integer[], $11::integer[],
                          $12::text[], $13::text[]) AS b (scope, name, grain, start, completed, failed, cancelled, pickup, run)
             WHERE EXISTS (SELECT 1 FROM moved)
            ON CONFLICT (cluster_id, scope, name, grain, start) DO UPDATE
               SET completed = s.completed + excluded.completed, failed = s.failed + excluded.failed,
                   cancelled = s.cancelled + excluded.cancelled,
                   pickup = taskyard_add_counts(s.pickup, excluded.pickup), run = taskyard_add_counts(s.run, excluded.run)
            RETURNING 1
        )
        SELECT EXISTS (SELECT 1 FROM moved) AS moved, (SELECT count(*) FROM added) AS buckets
        """)

    /// The live tasks now, by cluster, type and initiating node, into this minute's and this hour's rows:
    /// each keeps the most it has seen.
    static let sampleDepth = PostgresStatement("stats.sample_depth", """
        INSERT INTO task_stats AS s (cluster_id, scope, name, grain, start, queued, received)
        SELECT c.cluster_id, c.scope, c.name, g.grain, date_bin(make_interval(secs => g.grain), now(), 'epoch'), c.queued, c.received
          FROM (SELECT cluster_id,
                       CASE WHEN grouping(type) = 0 THEN 'type' WHEN grouping(assigned_node) = 0 THEN 'node' ELSE '' END AS scope,
                       CASE WHEN grouping(type) = 0 THEN type WHEN grouping(assigned_node) = 0 THEN assigned_node ELSE '' END AS name,
                       count(*) FILTER (WHERE state = 'queued') AS queued, count(*) FILTER (WHERE state = 'received') AS received
                  FROM tasks WHERE state IN ('queued', 'received')
                 GROUP BY GROUPING SETS ((cluster_id), (cluster_id, type), (cluster_id, assigned_node))) AS c,
               (VALUES (60), (3600)) AS g (grain)
        ON CONFLICT (cluster_id, scope, name, grain, start) DO UPDATE
           SET queued = greatest(s.queued, excluded.queued), received = greatest(s.received, excluded.received)
        """)

    /// Forgets buckets that start before $1.
    static let prune = PostgresStatement("stats.prune", """
        DELETE FROM task_stats WHERE start < $1
        """)

    /// Cluster $1's buckets of scope ($2, $3) and grain $4 that start from $5 until $6, oldest first (read
    /// through the primary key).
    static let buckets = PostgresStatement("stats.buckets", """
        SELECT start, completed, failed, cancelled, queued, received, pickup, run
          FROM task_stats
         WHERE cluster_id = $1 AND scope = $2 AND name = $3 AND grain = $4 AND start >= $5 AND start < $6
         ORDER BY start
        """)

    static let all = [positions, finished, record, sampleDepth, prune, buckets]
}
