import Foundation
import Postgres
import TaskyardDomain

/// The statements of `SubmissionStore`: inserting tasks (one, a group of concurrent submits, a batch), cancel, retry, delete.
extension TasksSQL {
    /// What a submission needs to know first: does the cluster exist, which of the nodes are registered,
    /// which of the parents are live.
    static let submissionContext = PostgresStatement("tasks.submission_context", """
        SELECT EXISTS (SELECT 1 FROM clusters WHERE id = $1) AS cluster_exists,
               ARRAY(SELECT id FROM nodes WHERE cluster_id = $1 AND id = ANY ($2::text[])) AS known_nodes,
               ARRAY(SELECT id FROM tasks
                      WHERE cluster_id = $1 AND id = ANY ($3::bigint[])
                        AND state IN ('queued', 'received') AND cancel_requested_at IS NULL) AS live_parents
        """)

    /// ∅ → queued, for one task, in one round trip: only when every participating node is registered in
    /// the cluster (so the cluster exists) and the parent, if any, is live; an idempotency key already used
    /// in the cluster inserts nothing. No row back: the caller finds out which (`submissionContext`). A submit that arrives alone
    /// (`SubmitGroups`) is written by it: cheaper to plan than the group statement, and an idle server's
    /// pick-up latency is mostly this statement.
    static let insert = PostgresStatement("tasks.insert", """
        WITH candidate AS (
            SELECT nextval('tasks_id_seq') AS id,
                   CASE WHEN $22::text = 'cancel_newest' AND $20::text IS NOT NULL
                        THEN \(liveOfKey("$20::text")) >= coalesce($21::integer, 1) ELSE false END AS at_limit
             WHERE (SELECT count(*) FROM nodes WHERE cluster_id = $1 AND id = ANY ($5::text[])) = cardinality($5::text[])
               AND ($25::text IS NULL OR EXISTS (SELECT 1 FROM nodes WHERE cluster_id = $1 AND id = $25::text))
               AND ($6::bigint IS NULL OR EXISTS (
                       SELECT 1 FROM tasks p
                        WHERE p.cluster_id = $1 AND p.id = $6::bigint AND p.state IN ('queued', 'received')
                          AND p.cancel_requested_at IS NULL))
        ), keyed AS (
            \(claimKeys(from: "SELECT id, $12::text AS idempotency_key, $17::text AS idempotency_digest FROM candidate"))
        ), inserted AS (
            INSERT INTO tasks (id, cluster_id, type, payload, assigned_node, participating_nodes, parent_id,
                               max_attempts, priority, run_after, timeout_seconds, ordering_key,
                               idempotency_key, opaque_id, affinity, abortable, internal,
                               traceparent, complete_when, concurrency_key, concurrency_limit, on_limit, on_offline,
                               on_finish_type, on_finish_node, schedule_id, schedule_slot, \(refusalColumns))
            OVERRIDING SYSTEM VALUE
            SELECT c.id, $1, $2, $3::jsonb, $4, $5::text[], $6::bigint, $7, $8, $9::timestamptz, $10, $11,
                   $12, $13, $14, $15, $16, $18, $19, $20, $21, $22, $23, $24::text, $25::text, $26::text,
                   $27::timestamptz,
                   \(refusal(atLimit: "c.at_limit", key: "$20::text", limit: "$21::integer"))
              FROM candidate c
             WHERE $12::text IS NULL OR c.id IN (SELECT task_id FROM keyed)
            RETURNING *
        ), event AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt)
            SELECT cluster_id, id, NULL, state, assigned_node, attempt FROM inserted
        ), \(keySlots)
        SELECT \(columns), \(noParticipants) FROM inserted
        """)

    /// The rows of a many-task insert (`insertGroup`, `insertBatch`): $2…$27 are arrays aligned by position.
    private static let manyInput = """
        SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::integer[],
                                 $8::integer[], $9::timestamptz[], $10::integer[], $11::text[], $12::text[],
                                 $13::text[], $14::boolean[], $15::boolean[], $16::text[], $17::text[], $18::text[],
                                 $19::text[], $20::text[], $21::integer[], $22::text[], $23::text[], $24::text[],
                                 $25::text[], $26::text[], $27::timestamptz[])
                   WITH ORDINALITY AS i (type, payload, assigned_node, participating_nodes, parent_id,
                                         max_attempts, priority, run_after, timeout_seconds, ordering_key,
                                         opaque_id, affinity, abortable, internal, idempotency_key,
                                         idempotency_digest, traceparent, complete_when, concurrency_key,
                                         concurrency_limit, on_limit, on_offline, on_finish_type, on_finish_node,
                                         schedule_id, schedule_slot, position)
        """

    /// The live (queued or received) tasks of the cluster's concurrency key `key`.
    private static func liveOfKey(_ key: String) -> String {
        "(SELECT count(*) FROM tasks e WHERE e.cluster_id = $1 AND e.concurrency_key = \(key) AND e.state IN ('queued', 'received'))"
    }

    /// The columns `refusal` fills.
    private static let refusalColumns = "state, finished_at, cancel_requested_at, cancel_reason"

    /// A task whose `on_limit` is `cancel_newest` and whose key already has its limit of live tasks (those
    /// before it in the same statement included) is inserted `cancelled`, with the reason: refused in the
    /// statement that writes it, no poll can claim it first. Two statements at the same instant may both
    /// see room; the claim still holds the key to its limit of received tasks.
    private static func refusal(atLimit: String, key: String, limit: String) -> String {
        """
        CASE WHEN \(atLimit) THEN 'cancelled' ELSE 'queued' END, CASE WHEN \(atLimit) THEN now() END,
                   CASE WHEN \(atLimit) THEN now() END,
                   CASE WHEN \(atLimit) THEN 'concurrency key ' || \(key) || ' already has its limit of '
                                           || coalesce(\(limit), 1) || ' live tasks' END
        """
    }

    /// The slot row of each concurrency key the inserted tasks name, made with the first task of the key
    /// (a claim locks it; it must be there before the task can be claimed).
    private static let keySlots = """
        key_slots AS (
            INSERT INTO admission_slots (cluster_id, kind, name)
            SELECT DISTINCT cluster_id, 'key', concurrency_key FROM inserted WHERE concurrency_key IS NOT NULL
            ON CONFLICT DO NOTHING
        )
        """

    /// Takes the idempotency keys of the rows `source` selects (`id`, `idempotency_key`,
    /// `idempotency_digest`) for their tasks, in `task_idempotency_keys` with the digest of the request that
    /// took each (kept there, not in `tasks`, which the reader role reads whole); returns the task ids whose
    /// key was free. The key table is the arbiter across the live and finished sides of `tasks`, which no
    /// unique index can span.
    private static func claimKeys(from source: String) -> String {
        """
        INSERT INTO task_idempotency_keys (cluster_id, idempotency_key, task_id, digest)
            SELECT $1, k.idempotency_key, k.id, k.idempotency_digest FROM (\(source)) AS k WHERE k.idempotency_key IS NOT NULL
            ON CONFLICT DO NOTHING
            RETURNING task_id
        """
    }

    /// Inserts the rows of `source` in position order (a used idempotency key skips its row), as the CTE
    /// `inserted`, with their first event: the rest of a `WITH` after `source`. Ids are drawn in position
    /// order before the keys are taken, so inserted rows come in id order.
    private static func manyInsert(from source: String) -> String {
        """
        key_limits AS MATERIALIZED (
            -- Over the cancel_newest arrivals alone (mostly none): ranking every row by key sorted the
            -- whole batch, payloads and all, twice.
            SELECT w.position, \(liveOfKey("w.concurrency_key"))
                               + count(*) OVER (PARTITION BY w.concurrency_key ORDER BY w.position
                                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                               >= coalesce(w.concurrency_limit, 1) AS at_limit
              FROM \(source) AS w WHERE w.on_limit = 'cancel_newest' AND w.concurrency_key IS NOT NULL
        ), numbered AS MATERIALIZED (
            SELECT s.*, nextval('tasks_id_seq') AS id,
                   CASE WHEN s.on_limit = 'cancel_newest' AND s.concurrency_key IS NOT NULL
                        THEN (SELECT l.at_limit FROM key_limits l WHERE l.position = s.position) ELSE false END AS at_limit
              FROM (SELECT * FROM \(source) ORDER BY position) AS s
        ), keyed AS (
            \(claimKeys(from: "SELECT id, idempotency_key, idempotency_digest FROM numbered"))
        ), inserted AS (
            INSERT INTO tasks (id, cluster_id, type, payload, assigned_node, participating_nodes, parent_id,
                               max_attempts, priority, run_after, timeout_seconds, ordering_key, opaque_id,
                               affinity, abortable, internal, idempotency_key, traceparent,
                               complete_when, concurrency_key, concurrency_limit, on_limit, on_offline,
                               on_finish_type, on_finish_node, schedule_id, schedule_slot, \(refusalColumns))
            OVERRIDING SYSTEM VALUE
            SELECT id, $1, type, payload::jsonb, assigned_node, participating_nodes::text[], parent_id,
                   max_attempts, priority, run_after, timeout_seconds, ordering_key, opaque_id,
                   affinity, abortable, internal, idempotency_key, traceparent, complete_when,
                   concurrency_key, concurrency_limit, on_limit, on_offline, on_finish_type, on_finish_node,
                   schedule_id, schedule_slot, \(refusal(atLimit: "at_limit", key: "concurrency_key", limit: "concurrency_limit"))
              FROM numbered
             WHERE idempotency_key IS NULL OR id IN (SELECT task_id FROM keyed)
             ORDER BY position
            RETURNING *
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt)
            SELECT cluster_id, id, NULL, state, assigned_node, attempt FROM inserted
        ), \(keySlots)
        """
    }

    /// ∅ → queued for the single submits that arrived together (`SubmitGroups`): one statement and one
    /// commit for all of them, each task on its own — an item whose nodes are not all registered, whose
    /// parent no longer takes children, or whose idempotency key was used is skipped, not the group.
    /// `accepted_positions` (on every row) lists the items that passed the checks, in order; inserted rows
    /// come in id order, which is that order minus the keyed items a conflict skipped.
    static let insertGroup = PostgresStatement("tasks.insert_group", """
        WITH input AS (
            \(manyInput)
        ), accepted AS MATERIALIZED (
            SELECT * FROM input i
             WHERE (SELECT count(*) FROM nodes
                     WHERE cluster_id = $1 AND id = ANY (i.participating_nodes::text[])) = cardinality(i.participating_nodes::text[])
               AND (i.on_finish_node IS NULL OR EXISTS (SELECT 1 FROM nodes WHERE cluster_id = $1 AND id = i.on_finish_node))
               AND (i.parent_id IS NULL OR EXISTS (
                       SELECT 1 FROM tasks p
                        WHERE p.cluster_id = $1 AND p.id = i.parent_id AND p.state IN ('queued', 'received')
                          AND p.cancel_requested_at IS NULL))
        ), \(manyInsert(from: "accepted"))
        SELECT \(columns), \(noParticipants),
               (SELECT array_agg(position ORDER BY position) FROM accepted) AS accepted_positions
          FROM inserted ORDER BY id
        """)

    /// The tasks already made with these keys, and whether each was made by the same request (`digest`:
    /// the new requests' digests, aligned with `keys`; a task from before digests were kept matches any).
    static let byIdempotencyKey = PostgresStatement("tasks.by_idempotency_key", """
        SELECT \(prefixed(columns, with: "t")), \(participants(of: "t")), k.position,
               (ik.digest IS NULL OR ik.digest = k.digest) AS same_request
          FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k (key, digest, position)
          JOIN task_idempotency_keys ik ON ik.cluster_id = $1 AND ik.idempotency_key = k.key
          JOIN tasks t ON t.cluster_id = $1 AND t.id = ik.task_id
        """)

    /// ∅ → queued, for many tasks in one statement: all or nothing. Arrays are aligned by position;
    /// `participating_nodes` are array literals, one per task.
    static let insertBatch = PostgresStatement("tasks.insert_batch", """
        WITH input AS (
            \(manyInput)
        ), \(manyInsert(from: "input"))
        SELECT \(columns), \(noParticipants) FROM inserted ORDER BY id
        """)

    /// The tasks a `cancel_in_progress` arrival ($2: just submitted) cancels, each with its reason: its key's
    /// live tasks up to the newest arrival, but the newest `limit` (received ones already told to stop are on
    /// their way out and not counted).
    static let concurrencyOverflow = PostgresStatement("tasks.concurrency_overflow", """
        WITH arrivals AS (
            SELECT t.id, t.concurrency_key AS key, coalesce(t.concurrency_limit, 1) AS key_limit
              FROM tasks t
             WHERE t.cluster_id = $1 AND t.id = ANY ($2::bigint[]) AND t.state IN ('queued', 'received')
               AND t.concurrency_key IS NOT NULL AND t.on_limit = 'cancel_in_progress'
        )
        SELECT e.id, 'replaced by task ' || m.newest || ' (concurrency key ' || m.key || ')' AS reason
          FROM (SELECT key, max(id) AS newest, min(key_limit) AS key_limit FROM arrivals GROUP BY key) AS m
         CROSS JOIN LATERAL (
               SELECT e.id FROM tasks e
                WHERE e.cluster_id = $1 AND e.concurrency_key = m.key AND e.id <= m.newest
                  AND (e.state = 'queued' OR (e.state = 'received' AND e.cancel_requested_at IS NULL))
                ORDER BY e.id DESC OFFSET m.key_limit) AS e
         ORDER BY e.id
        """)

    /// Cancels a task and its descendants (Elasticsearch's cancelTaskAndDescendants): each queued one ends
    /// `cancelled` at once; each received one is flagged, and stays received until its agent stops it.
    /// Nothing happens unless the task itself can be cancelled (live, abortable, not already flagged);
    /// descendants that are not abortable are left to run. Returns the task.
    static let cancel = PostgresStatement("tasks.cancel", """
        WITH RECURSIVE tree AS (
            SELECT cluster_id, id FROM tasks WHERE cluster_id = $1 AND id = $2
            UNION ALL
            SELECT c.cluster_id, c.id FROM tasks c JOIN tree ON c.cluster_id = tree.cluster_id AND c.parent_id = tree.id
        ), target AS (
            SELECT t.cluster_id, t.id, t.state FROM tasks t JOIN tree ON t.cluster_id = tree.cluster_id AND t.id = tree.id
             WHERE t.abortable
               AND (t.state = 'queued' OR (t.state = 'received' AND t.cancel_requested_at IS NULL))
               AND EXISTS (SELECT 1 FROM tasks root
                            WHERE root.cluster_id = $1 AND root.id = $2 AND root.abortable
                              AND (root.state = 'queued' OR (root.state = 'received' AND root.cancel_requested_at IS NULL)))
             -- In id order, as reports and heartbeats lock theirs: no deadlock between them.
             ORDER BY t.id
               FOR UPDATE OF t
        ), cancelled AS (
            UPDATE tasks t
               -- t.state, not target.state: the row as locked now. A poll that claimed the task between
               -- this statement's snapshot and its lock made it received (with a lease): it is flagged,
               -- not ended, and keeps its lease.
               SET state = CASE WHEN t.state = 'queued' THEN 'cancelled' ELSE t.state END,
                   finished_at = CASE WHEN t.state = 'queued' THEN now() ELSE t.finished_at END,
                   cancel_requested_at = now(), cancel_reason = $3, updated_at = now()
              FROM target
             WHERE t.cluster_id = $1 AND t.id = ANY (ARRAY(SELECT id FROM target)) AND t.id = target.id
            RETURNING t.*, CASE WHEN t.state = 'cancelled' THEN 'queued' ELSE t.state END AS previous_state
        ), event AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
            SELECT cluster_id, id, previous_state, state, assigned_node, attempt,
                   CASE WHEN id = $2 THEN $4::jsonb
                        ELSE coalesce($4::jsonb, '{}') || jsonb_build_object('cancelled_with', $2::bigint) END
              FROM cancelled
        )
        -- finished_ids (and their types): the tasks of the tree it ended;
        -- holder_nodes: the nodes told to stop theirs.
        SELECT \(columns), \(participants(of: "cancelled")),
               ARRAY(SELECT id FROM cancelled WHERE state = 'cancelled') AS finished_ids,
               ARRAY(SELECT type FROM cancelled WHERE state = 'cancelled') AS finished_types,
               ARRAY(SELECT DISTINCT assigned_node FROM cancelled WHERE state = 'received') AS holder_nodes
          FROM cancelled WHERE id = $2
        """)

    /// failed | cancelled → queued with a fresh attempt budget. Attempt numbers keep counting up, so a
    /// report from before the retry stays stale. With $4 (`participants: failed`), the next attempt runs only
    /// the participants whose latest outcome is not `completed` — all of them when the last attempt rolled
    /// back what completed, or when none completed.
    static let retry = PostgresStatement("tasks.retry", """
        WITH target AS (
            SELECT cluster_id, id, state, participating_nodes, attempt FROM tasks
             WHERE cluster_id = $1 AND id = $2 AND state IN ('failed', 'cancelled')
               FOR UPDATE
        ), latest AS (
            SELECT DISTINCT ON (p.node) p.node, p.attempt, p.state, p.rollback
              FROM task_participants p JOIN target ON p.cluster_id = target.cluster_id AND p.task_id = target.id
             ORDER BY p.node, p.attempt DESC
        ), next AS (
            SELECT CASE WHEN NOT $4::boolean
                          OR EXISTS (SELECT 1 FROM latest WHERE rollback ->> 'state' = 'completed')
                        THEN NULL
                        ELSE ARRAY(SELECT node FROM unnest(target.participating_nodes) AS a (node)
                                    WHERE NOT EXISTS (SELECT 1 FROM latest l WHERE l.node = a.node AND l.state = 'completed'))
                        END AS nodes
              FROM target
        ), retried AS (
            UPDATE tasks t
               SET state = 'queued', budget_start = t.attempt, result = NULL, error = NULL, progress = NULL,
                   attempt_nodes = CASE WHEN cardinality(next.nodes) > 0 AND cardinality(next.nodes) < cardinality(t.participating_nodes)
                                        THEN next.nodes END,
                   run_after = NULL, received_at = NULL, finished_at = NULL, lease_expires_at = NULL,
                   cancel_requested_at = NULL, cancel_reason = NULL, updated_at = now()
              FROM target, next
             WHERE t.cluster_id = $1 AND t.id = $2 AND t.id = target.id
            RETURNING t.*, target.state AS previous_state
        ), event AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
            SELECT cluster_id, id, previous_state, state, assigned_node, attempt, $3::jsonb FROM retried
        )
        SELECT \(columns), \(participants(of: "retried")) FROM retried
        """)

    /// Removes a finished task with its descendants and all their events, participant outcomes and
    /// idempotency keys, only when nothing in the tree is still live. Rows back: the tree's, none when
    /// nothing was deleted.
    static let delete = PostgresStatement("tasks.delete", """
        WITH RECURSIVE tree AS (
            SELECT cluster_id, id, state FROM tasks WHERE cluster_id = $1 AND id = $2
            UNION ALL
            SELECT t.cluster_id, t.id, t.state
              FROM tasks t JOIN tree ON t.cluster_id = tree.cluster_id AND t.parent_id = tree.id
        ), locked AS MATERIALIZED (
            -- The tree as it stands, locked: a retry or a cancel of one of its tasks between this
            -- statement's snapshot and its delete waits, or is waited for and then seen. Decided from the
            -- snapshot alone, a task queued again meanwhile could be deleted live.
            SELECT t.id, t.state FROM tasks t JOIN tree ON t.cluster_id = tree.cluster_id AND t.id = tree.id
             ORDER BY t.id
               FOR UPDATE OF t
        ), finished AS (
            SELECT NOT EXISTS (SELECT 1 FROM locked WHERE state IN ('queued', 'received'))
                   AND (SELECT count(*) FROM locked) = (SELECT count(*) FROM tree) AS ok
        ), events AS (
            DELETE FROM task_events e USING tree
             WHERE (SELECT ok FROM finished) AND e.cluster_id = tree.cluster_id AND e.task_id = tree.id
        ), outcomes AS (
            DELETE FROM task_participants p USING tree
             WHERE (SELECT ok FROM finished) AND p.cluster_id = tree.cluster_id AND p.task_id = tree.id
        ), keys AS (
            DELETE FROM task_idempotency_keys k USING tree
             WHERE (SELECT ok FROM finished) AND k.cluster_id = tree.cluster_id AND k.task_id = tree.id
        )
        DELETE FROM tasks t USING tree
         WHERE (SELECT ok FROM finished) AND t.cluster_id = tree.cluster_id AND t.id = tree.id
        RETURNING t.id
        """)
}

/// A task as the insert statements take it: the submission and what the store decided for it.
struct NewTask: Sendable {
    var submission: TaskSubmission
    /// The node that holds the task and fans it out.
    var initiator: String
    var maxAttempts: Int
    var timeoutSeconds: Int?
    /// What tells a repeated keyed request from a new one; nil for an unkeyed one.
    var idempotencyDigest: String?
}

/// `SubmissionStore`'s insert statements with their parameters as named fields.
enum SubmissionStatements {
    /// `TasksSQL.insert`: one task.
    struct Insert: PostgresTypedStatement {
        static var statement: PostgresStatement { TasksSQL.insert }
        var cluster: String
        var task: NewTask

        var bindings: [any PostgresEncodable] {
            let submission = task.submission
            return [
                cluster, submission.type, submission.payload, task.initiator, submission.participatingNodes,
                submission.parentID, task.maxAttempts, submission.priority, submission.runAfter, task.timeoutSeconds,
                submission.orderingKey, submission.idempotencyKey, submission.opaqueID, submission.affinity.rawValue,
                submission.abortable, submission.isInternal, task.idempotencyDigest, submission.traceparent,
                submission.completeWhen.stored, submission.concurrency?.key, submission.concurrency?.limit,
                (submission.concurrency?.onLimit ?? .queue).rawValue, submission.onOffline.rawValue,
                submission.onFinish?.type, submission.onFinish?.node, submission.schedule?.id, submission.schedule?.slot,
            ]
        }

        func decodeRow(_ row: PostgresRow) throws(PostgresError) -> TaskRecord { try TaskRecord(row: row) }
    }

    /// The values of `TasksSQL.insertGroup` and `insertBatch`: `$2…$27` arrays aligned by position.
    static func manyBindings(cluster: String, tasks: [NewTask]) -> [any PostgresEncodable] {
        let submissions = tasks.map(\.submission)
        return [
            cluster, submissions.map(\.type), submissions.map(\.payload.text), tasks.map(\.initiator),
            submissions.map { $0.participatingNodes.postgresText }, submissions.map(\.parentID), tasks.map(\.maxAttempts),
            submissions.map(\.priority), submissions.map(\.runAfter), tasks.map(\.timeoutSeconds),
            submissions.map(\.orderingKey), submissions.map(\.opaqueID), submissions.map(\.affinity.rawValue),
            submissions.map(\.abortable), submissions.map(\.isInternal), submissions.map(\.idempotencyKey),
            tasks.map(\.idempotencyDigest), submissions.map(\.traceparent), submissions.map(\.completeWhen.stored),
            submissions.map(\.concurrency?.key), submissions.map(\.concurrency?.limit),
            submissions.map { ($0.concurrency?.onLimit ?? .queue).rawValue }, submissions.map(\.onOffline.rawValue),
            submissions.map(\.onFinish?.type), submissions.map(\.onFinish?.node), submissions.map(\.schedule?.id),
            submissions.map(\.schedule?.slot),
        ]
    }

    /// `TasksSQL.insertGroup`: concurrent single submits in one statement. Rows: the inserted tasks, each
    /// with `accepted_positions`.
    struct InsertGroup: PostgresTypedStatement {
        static var statement: PostgresStatement { TasksSQL.insertGroup }
        var cluster: String
        var tasks: [NewTask]
        var bindings: [any PostgresEncodable] { manyBindings(cluster: cluster, tasks: tasks) }
    }

    /// `TasksSQL.insertBatch`: a batch, all or nothing.
    struct InsertBatch: PostgresTypedStatement {
        static var statement: PostgresStatement { TasksSQL.insertBatch }
        var cluster: String
        var tasks: [NewTask]
        var bindings: [any PostgresEncodable] { manyBindings(cluster: cluster, tasks: tasks) }
        func decodeRow(_ row: PostgresRow) throws(PostgresError) -> TaskRecord { try TaskRecord(row: row) }
    }
}

extension SubmissionStatements {
    /// `TasksSQL.cancel`: a task and its descendants.
    struct Cancel: PostgresTypedStatement {
        static var statement: PostgresStatement { TasksSQL.cancel }
        var cluster: String
        var taskID: Int64
        var reason: String?
        var eventDetail: JSONValue?
        var bindings: [any PostgresEncodable] { [cluster, taskID, reason, eventDetail] }
    }

    /// `TasksSQL.retry`: a failed or cancelled task queued again.
    struct Retry: PostgresTypedStatement {
        static var statement: PostgresStatement { TasksSQL.retry }
        var cluster: String
        var taskID: Int64
        var eventDetail: JSONValue?
        /// Only the participants without a completed outcome run next (else all of them).
        var onlyFailed: Bool
        var bindings: [any PostgresEncodable] { [cluster, taskID, eventDetail, onlyFailed] }
        func decodeRow(_ row: PostgresRow) throws(PostgresError) -> TaskRecord { try TaskRecord(row: row) }
    }
}
