import Foundation
import Postgres
import TaskyardDomain

/// The statements of `MaintenanceStore`: expired leases, offline nodes, pruning, the probe.
extension TasksSQL {
    static let probe = PostgresStatement("tasks.probe", """
        SELECT 1 AS one FROM tasks LIMIT 1
        """)

    /// Received tasks whose lease ran out (their agent or node is gone): queued again while attempts
    /// remain (the next claim is attempt + 1), failed after the last one, cancelled if a cancel was asked.
    static let expireLeases = PostgresStatement("tasks.expire_leases", """
        WITH expired AS (
            SELECT ctid FROM tasks
             WHERE state = 'received' AND lease_expires_at < now()
             ORDER BY lease_expires_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED
        ), ended AS (
            UPDATE tasks t
               SET state = CASE WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled'
                                WHEN t.attempt - t.budget_start < t.max_attempts THEN 'queued'
                                ELSE 'failed' END,
                   error = CASE WHEN t.cancel_requested_at IS NULL AND t.attempt - t.budget_start >= t.max_attempts
                                THEN 'lease expired after ' || (t.attempt - t.budget_start) || ' attempts'
                                ELSE t.error END,
                   finished_at = CASE WHEN t.cancel_requested_at IS NOT NULL
                                        OR t.attempt - t.budget_start >= t.max_attempts THEN now() END,
                   lease_expires_at = NULL, lease_hash = NULL, updated_at = now()
             WHERE t.state = 'received' AND t.ctid = ANY (ARRAY(SELECT ctid FROM expired))
            RETURNING t.*
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
            SELECT cluster_id, id, 'received', state, assigned_node, attempt,
                   jsonb_build_object('reason', 'lease expired', 'attempt_lost', attempt) FROM ended
        ), unheld AS (
            SELECT cluster_id, \(slotHolders(of: "ended")), concurrency_key FROM ended
        ), \(releaseSlots(of: "unheld", name: "slots"))
        SELECT \(columns), \(participants(of: "ended")) FROM ended ORDER BY id
        """)

    /// Queued tasks of offline nodes move to the first online participating node, unless their affinity
    /// is strict; each move is written to the task's history.
    static let reassignFromOfflineNodes = PostgresStatement("tasks.reassign_from_offline_nodes", """
        WITH candidates AS (
            SELECT t.cluster_id, t.id, t.assigned_node AS old_node, target.node AS new_node
              FROM tasks t
              JOIN nodes gone ON gone.cluster_id = t.cluster_id AND gone.id = t.assigned_node AND gone.status = 'offline'
              CROSS JOIN LATERAL (
                    SELECT p.node FROM unnest(t.participating_nodes) WITH ORDINALITY AS p (node, position)
                      JOIN nodes n ON n.cluster_id = t.cluster_id AND n.id = p.node AND n.status = 'online'
                     ORDER BY p.position LIMIT 1) AS target
             WHERE t.state = 'queued' AND t.affinity = 'any'
             ORDER BY t.id
             LIMIT $1
               FOR UPDATE OF t SKIP LOCKED
        ), moved AS (
            UPDATE tasks t SET assigned_node = c.new_node, updated_at = now()
              FROM candidates c
             WHERE t.cluster_id = c.cluster_id AND t.id = c.id AND t.state = 'queued'
            RETURNING t.cluster_id, t.id, t.attempt, c.old_node, c.new_node
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
            SELECT cluster_id, id, 'queued', 'queued', new_node, attempt,
                   jsonb_build_object('reason', 'reassigned after node loss', 'from', old_node, 'to', new_node)
              FROM moved
        )
        SELECT cluster_id, id, old_node, new_node FROM moved ORDER BY id
        """)

    /// Queued tasks that said `"on_offline": "fail"` and would run on an offline node: failed at once, up
    /// to $1 of them, each with the nodes in its error and history.
    static let failOfflineWaiters = PostgresStatement("tasks.fail_offline_waiters", """
        WITH doomed AS (
            SELECT t.cluster_id, t.id, gone.nodes
              FROM tasks t
              CROSS JOIN LATERAL (
                    SELECT array_agg(o.node ORDER BY o.position) AS nodes
                      FROM unnest(\(occupiedNodes(of: "t"))) WITH ORDINALITY AS o (node, position)
                      JOIN nodes n ON n.cluster_id = t.cluster_id AND n.id = o.node AND n.status = 'offline') AS gone
             WHERE t.state = 'queued' AND t.on_offline = 'fail' AND gone.nodes IS NOT NULL
             ORDER BY t.id
             LIMIT $1
               FOR UPDATE OF t SKIP LOCKED
        ), failed AS (
            UPDATE tasks t
               SET state = 'failed', finished_at = now(), updated_at = now(),
                   error = 'offline: ' || array_to_string(d.nodes, ', ') || ' (the task says on_offline fail)'
              FROM doomed d
             WHERE t.cluster_id = d.cluster_id AND t.id = d.id AND t.state = 'queued'
            RETURNING t.*, d.nodes AS offline_nodes
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
            SELECT cluster_id, id, 'queued', 'failed', assigned_node, attempt,
                   jsonb_build_object('reason', 'participant offline', 'nodes', to_jsonb(offline_nodes))
              FROM failed
        )
        SELECT \(columns), \(participants(of: "failed")) FROM failed ORDER BY id
        """)

    /// Deletes up to $3 finished root tasks that finished more than $1 seconds ago (of the states in $2,
    /// and the cluster $4, when given), with their descendants and all their
    /// events and participant outcomes. A tree with a live descendant stays. Each batch is one short statement.
    /// Roots with an id below $5 (the complete history ranges, which retention drops whole) are left for
    /// $6 seconds more: only what a range drop could not take is deleted row by row.
    static let prune = PostgresStatement("tasks.prune", """
        WITH RECURSIVE doomed AS (
            SELECT t.cluster_id, t.id FROM tasks t
             WHERE t.parent_id IS NULL AND t.state IN ('completed', 'failed', 'cancelled')
               AND t.finished_at < now() - make_interval(secs => $1::double precision)
               AND ($5::bigint IS NULL OR t.id >= $5::bigint
                    OR t.finished_at < now() - make_interval(secs => $1::double precision + $6::double precision))
               AND ($2::text[] IS NULL OR t.state = ANY ($2::text[]))
               AND ($4::text IS NULL OR t.cluster_id = $4::text)
               AND NOT EXISTS (
                     WITH RECURSIVE descendants AS (
                         SELECT c.cluster_id, c.id, c.state FROM tasks c
                          WHERE c.cluster_id = t.cluster_id AND c.parent_id = t.id
                         UNION ALL
                         SELECT g.cluster_id, g.id, g.state FROM tasks g
                           JOIN descendants d ON g.cluster_id = d.cluster_id AND g.parent_id = d.id
                     )
                     SELECT 1 FROM descendants WHERE state IN ('queued', 'received'))
             ORDER BY t.finished_at
             LIMIT $3
               FOR UPDATE SKIP LOCKED
        ), found AS (
            SELECT cluster_id, id, id AS root FROM doomed
            UNION ALL
            SELECT c.cluster_id, c.id, found.root FROM tasks c
              JOIN found ON c.cluster_id = found.cluster_id AND c.parent_id = found.id
        ), locked AS MATERIALIZED (
            -- Every member as it stands, locked (the roots are already): a sub-task retried between the
            -- snapshot and the delete is seen live here, and its tree is spared this time.
            SELECT t.cluster_id, t.id, t.state, found.root FROM tasks t
              JOIN found ON t.cluster_id = found.cluster_id AND t.id = found.id
             ORDER BY t.id
               FOR UPDATE OF t
        ), tree AS (
            SELECT cluster_id, id FROM locked
             WHERE root NOT IN (SELECT root FROM locked WHERE state IN ('queued', 'received'))
        ), events AS (
            DELETE FROM task_events e USING tree WHERE e.cluster_id = tree.cluster_id AND e.task_id = tree.id
        ), outcomes AS (
            DELETE FROM task_participants p USING tree WHERE p.cluster_id = tree.cluster_id AND p.task_id = tree.id
        ), keys AS (
            DELETE FROM task_idempotency_keys k USING tree WHERE k.cluster_id = tree.cluster_id AND k.task_id = tree.id
        ), removed AS (
            DELETE FROM tasks t USING tree WHERE t.cluster_id = tree.cluster_id AND t.id = tree.id
            RETURNING t.cluster_id, t.id
        )
        SELECT r.id FROM removed r JOIN doomed d ON d.cluster_id = r.cluster_id AND d.id = r.id
        """)
}

/// `MaintenanceStore`'s statements with several parameters, as named fields.
enum MaintenanceStatements {
    /// `TasksSQL.prune`: finished root tasks older than `age`, with their descendants and history.
    struct Prune: PostgresTypedStatement {
        static var statement: PostgresStatement { TasksSQL.prune }
        var age: Duration
        var states: [TaskState]?
        var limit: Int
        var cluster: String?
        /// Roots with ids below this wait `grace` more (retention drops their ranges whole).
        var sparing: Int64?
        var grace: Duration
        var bindings: [any PostgresEncodable] {
            [age.inSeconds, states.map { $0.map(\.rawValue) }, limit, cluster, sparing, grace.inSeconds]
        }
    }

    /// `HistorySQL.extend`: the ranges of finished task ids the next ids need.
    struct ExtendHistory: PostgresTypedStatement {
        static var statement: PostgresStatement { HistorySQL.extend }
        var ranges: MaintenanceStore.HistoryRanges
        /// At least this many ids' worth of ranges ahead.
        var room: Int64
        var bindings: [any PostgresEncodable] {
            [Double(ranges.period.components.seconds), ranges.minimumSpan, ranges.rangesAhead, room]
        }
        func decodeRow(_ row: PostgresRow) throws(PostgresError) -> Int { try row.decode("made") }
    }
}
