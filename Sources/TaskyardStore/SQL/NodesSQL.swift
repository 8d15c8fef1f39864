import Postgres
import TaskyardDomain

/// Every statement on `nodes`.
enum NodesSQL {
    static let columns = """
        cluster_id, id, endpoint, status, labels, capacity, registered_at, last_seen_at,
        (SELECT count(*) FROM tasks t
          WHERE t.cluster_id = nodes.cluster_id AND t.assigned_node = nodes.id AND t.state = 'received') AS held_tasks,
        coalesce((SELECT s.used FROM admission_slot_counts s
                   WHERE s.cluster_id = nodes.cluster_id AND s.kind = 'node' AND s.name = nodes.id), 0) AS in_use
        """

    /// Registration by an agent: idempotent, and it brings an offline node back online. A new node gets its
    /// slot row (gang admission counts its tasks there).
    static let upsert = PostgresStatement("nodes.upsert", """
        WITH nodes AS (
            INSERT INTO nodes (cluster_id, id, endpoint, labels, capacity)
            VALUES ($1, $2, $3, $4::jsonb, $5)
            ON CONFLICT (cluster_id, id) DO UPDATE
               SET endpoint = excluded.endpoint, labels = excluded.labels, capacity = excluded.capacity,
                   status = 'online', last_seen_at = now()
            RETURNING *
        ), slot AS (
            INSERT INTO admission_slots (cluster_id, kind, name) SELECT cluster_id, 'node', id FROM nodes
            ON CONFLICT DO NOTHING
        )
        SELECT \(columns) FROM nodes
        """)

    static let heartbeat = PostgresStatement("nodes.heartbeat", """
        UPDATE nodes SET last_seen_at = now(), status = 'online'
         WHERE cluster_id = $1 AND id = $2
        """)

    static let list = PostgresStatement("nodes.list", """
        SELECT \(columns) FROM nodes WHERE cluster_id = $1 ORDER BY id
        """)

    /// The online participant with the fewest live tasks; ties go to the earlier one in the list.
    static let leastLoaded = PostgresStatement("nodes.least_loaded", """
        SELECT p.node
          FROM unnest($2::text[]) WITH ORDINALITY AS p (node, position)
          JOIN nodes n ON n.cluster_id = $1 AND n.id = p.node AND n.status = 'online'
         ORDER BY (SELECT count(*) FROM tasks t
                    WHERE t.cluster_id = $1 AND t.assigned_node = p.node AND t.state = 'queued')
                + (SELECT count(*) FROM tasks t
                    WHERE t.cluster_id = $1 AND t.assigned_node = p.node AND t.state = 'received'),
                  p.position
         LIMIT 1
        """)

    /// Online nodes not seen for $1 seconds go offline. Their queued tasks with strict affinity stay, and
    /// say so in their history; the others are moved by `tasks.reassign_from_offline_nodes`.
    static let markOffline = PostgresStatement("nodes.mark_offline", """
        WITH gone AS (
            UPDATE nodes SET status = 'offline'
             WHERE status = 'online' AND last_seen_at < now() - make_interval(secs => $1::double precision)
            RETURNING cluster_id, id
        ), waiting AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
            SELECT t.cluster_id, t.id, 'queued', 'queued', t.assigned_node, t.attempt,
                   jsonb_build_object('reason', 'awaiting node ' || t.assigned_node
                                      || ', which is offline: affinity strict keeps the task on it')
              FROM tasks t JOIN gone g ON t.cluster_id = g.cluster_id AND t.assigned_node = g.id
             WHERE t.state = 'queued' AND t.affinity = 'strict'
        )
        SELECT cluster_id, id FROM gone ORDER BY cluster_id, id
        """)

    /// Nodes by cluster and status (the metrics' scrape).
    static let countsByStatus = PostgresStatement("nodes.counts_by_status", """
        SELECT cluster_id, status, count(*) AS nodes FROM nodes GROUP BY cluster_id, status ORDER BY cluster_id, status
        """)

    static let all = [upsert, heartbeat, list, leastLoaded, markOffline, countsByStatus]
}

/// `NodesSQL.upsert`'s values as named fields: a node as its agent registers it.
struct RegisterNodeStatement: PostgresTypedStatement {
    static var statement: PostgresStatement { NodesSQL.upsert }
    var cluster: String
    var node: String
    var endpoint: String
    var labels: JSONValue
    var capacity: Int
    var bindings: [any PostgresEncodable] { [cluster, node, endpoint, labels, capacity] }
    func decodeRow(_ row: PostgresRow) throws(PostgresError) -> Node { try Node(row: row) }
}
