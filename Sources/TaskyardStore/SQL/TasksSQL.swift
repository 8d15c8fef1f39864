import Foundation
import Postgres
import TaskyardDomain

/// Every statement on `tasks`. Each transition writes its `task_events` row in the same statement, and
/// guards on the state it leaves (`WHERE state = …`), so two servers or a stale agent can never both win.
/// The guards implement `TaskStateMachine.transitions`; `StateMachineAgreementTests` holds them to it.
enum TasksSQL {
    // No statement notifies: the store sends `TaskSignal`s from the rows a statement returns, after it
    // commits (see `TaskSignals` for why).

    /// The columns of a task object, in every statement that returns tasks.
    static let columns = """
        id, cluster_id, type, state, payload, assigned_node, participating_nodes, parent_id, attempt,
        max_attempts, priority, run_after, timeout_seconds, lease_expires_at, ordering_key, idempotency_key,
        opaque_id, affinity, abortable, internal, result, error, progress, cancel_requested_at, cancel_reason,
        created_at, received_at, finished_at, updated_at, traceparent
        """

    /// The latest recorded outcome of each participating node of the task row `relation` names (any
    /// attempt), as a jsonb array, times in µs since 1970: the task object's `participants` column, beside
    /// `columns` in every statement that returns tasks. An index walk of the task's few outcome rows.
    static func participants(of relation: String) -> String {
        """
        (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'node', p.node, 'attempt', p.attempt, 'state', p.state, 'result', p.result, 'error', p.error,
                    'started_us', (extract(epoch FROM p.started_at) * 1000000)::bigint,
                    'finished_us', (extract(epoch FROM p.finished_at) * 1000000)::bigint,
                    'rollback', p.rollback, 'decided', p.decided)), '[]'::jsonb)
           FROM (SELECT DISTINCT ON (q.node) q.* FROM task_participants q
                  WHERE q.cluster_id = \(relation).cluster_id AND q.task_id = \(relation).id
                  ORDER BY q.node, q.attempt DESC) p) AS participants
        """
    }

    /// A task just inserted has no outcomes yet; one just claimed has none of its new attempt, and the task
    /// object shows every participant of a received task without an outcome of its attempt as running: no
    /// earlier attempt's outcome can change that, so a claim reads none (one index walk a claim saved).
    static let noParticipants = "'[]'::jsonb AS participants"

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
            SELECT nextval('tasks_id_seq') AS id
             WHERE (SELECT count(*) FROM nodes WHERE cluster_id = $1 AND id = ANY ($5::text[])) = cardinality($5::text[])
               AND ($6::bigint IS NULL OR EXISTS (
                       SELECT 1 FROM tasks p
                        WHERE p.cluster_id = $1 AND p.id = $6::bigint AND p.state IN ('queued', 'received')
                          AND p.cancel_requested_at IS NULL))
        ), keyed AS (
            \(claimKeys(from: "SELECT id, $12::text AS idempotency_key FROM candidate"))
        ), inserted AS (
            INSERT INTO tasks (id, cluster_id, type, payload, assigned_node, participating_nodes, parent_id,
                               max_attempts, priority, run_after, timeout_seconds, ordering_key,
                               idempotency_key, opaque_id, affinity, abortable, internal, idempotency_digest,
                               traceparent)
            OVERRIDING SYSTEM VALUE
            SELECT c.id, $1, $2, $3::jsonb, $4, $5::text[], $6::bigint, $7, $8, $9::timestamptz, $10, $11,
                   $12, $13, $14, $15, $16, $17, $18
              FROM candidate c
             WHERE $12::text IS NULL OR c.id IN (SELECT task_id FROM keyed)
            RETURNING *
        ), event AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt)
            SELECT cluster_id, id, NULL, state, assigned_node, attempt FROM inserted
        )
        SELECT \(columns), \(noParticipants) FROM inserted
        """)

    /// The rows of a many-task insert (`insertGroup`, `insertBatch`): $2…$18 are arrays aligned by position.
    private static let manyInput = """
        SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::integer[],
                                 $8::integer[], $9::timestamptz[], $10::integer[], $11::text[], $12::text[],
                                 $13::text[], $14::boolean[], $15::boolean[], $16::text[], $17::text[], $18::text[])
                   WITH ORDINALITY AS i (type, payload, assigned_node, participating_nodes, parent_id,
                                         max_attempts, priority, run_after, timeout_seconds, ordering_key,
                                         opaque_id, affinity, abortable, internal, idempotency_key,
                                         idempotency_digest, traceparent, position)
        """

    /// Takes the idempotency keys of the rows `source` selects (`id`, `idempotency_key`) for their tasks,
    /// in `task_idempotency_keys`; returns the task ids whose key was free. The key table is the arbiter
    /// across the live and finished sides of `tasks`, which no unique index can span.
    private static func claimKeys(from source: String) -> String {
        """
        INSERT INTO task_idempotency_keys (cluster_id, idempotency_key, task_id)
            SELECT $1, k.idempotency_key, k.id FROM (\(source)) AS k WHERE k.idempotency_key IS NOT NULL
            ON CONFLICT DO NOTHING
            RETURNING task_id
        """
    }

    /// Inserts the rows of `source` in position order (a used idempotency key skips its row), as the CTE
    /// `inserted`, with their first event: the rest of a `WITH` after `source`. Ids are drawn in position
    /// order before the keys are taken, so inserted rows come in id order.
    private static func manyInsert(from source: String) -> String {
        """
        numbered AS MATERIALIZED (
            SELECT s.*, nextval('tasks_id_seq') AS id FROM (SELECT * FROM \(source) ORDER BY position) AS s
        ), keyed AS (
            \(claimKeys(from: "SELECT id, idempotency_key FROM numbered"))
        ), inserted AS (
            INSERT INTO tasks (id, cluster_id, type, payload, assigned_node, participating_nodes, parent_id,
                               max_attempts, priority, run_after, timeout_seconds, ordering_key, opaque_id,
                               affinity, abortable, internal, idempotency_key, idempotency_digest, traceparent)
            OVERRIDING SYSTEM VALUE
            SELECT id, $1, type, payload::jsonb, assigned_node, participating_nodes::text[], parent_id,
                   max_attempts, priority, run_after, timeout_seconds, ordering_key, opaque_id,
                   affinity, abortable, internal, idempotency_key, idempotency_digest, traceparent
              FROM numbered
             WHERE idempotency_key IS NULL OR id IN (SELECT task_id FROM keyed)
             ORDER BY position
            RETURNING *
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt)
            SELECT cluster_id, id, NULL, state, assigned_node, attempt FROM inserted
        )
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
               (t.idempotency_digest IS NULL OR t.idempotency_digest = k.digest) AS same_request
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

    /// received → queued for claims that never reached their agent: each only under the lease the claim
    /// made, its attempt given back (the lease, not the attempt number, is what makes a later report stale).
    static let releaseUndelivered = PostgresStatement("tasks.release_undelivered", """
        WITH released AS (
            UPDATE tasks t
               SET state = 'queued', attempt = t.attempt - 1, received_at = NULL, lease_expires_at = NULL,
                   lease_hash = NULL, updated_at = now()
              FROM unnest($3::bigint[], $4::text[]) AS r (id, lease)
             WHERE t.cluster_id = $1 AND t.assigned_node = $2 AND t.id = r.id AND t.state = 'received'
               AND t.lease_hash = sha256(convert_to(r.lease, 'UTF8'))
            RETURNING t.*
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
            SELECT cluster_id, id, 'received', 'queued', assigned_node, attempt + 1, '{"reason": "not delivered"}'::jsonb
              FROM released
        )
        SELECT \(columns), \(participants(of: "released")) FROM released ORDER BY id
        """)

    /// Which of these tasks are held under these leases (to tell a stale report from an invalid one).
    static let leaseMatches = PostgresStatement("tasks.lease_matches", """
        SELECT t.id, t.rollback_attempt IS NOT DISTINCT FROM t.attempt AS rolling_back
          FROM unnest($2::bigint[], $3::text[]) AS r (id, lease)
          JOIN tasks t ON t.cluster_id = $1 AND t.id = r.id AND t.lease_hash = sha256(convert_to(r.lease, 'UTF8'))
        """)

    static let probe = PostgresStatement("tasks.probe", """
        SELECT 1 AS one FROM tasks LIMIT 1
        """)

    static let get = PostgresStatement("tasks.get", """
        SELECT \(columns), \(participants(of: "tasks")) FROM tasks WHERE cluster_id = $1 AND id = $2
        """)

    static let children = PostgresStatement("tasks.children", """
        SELECT \(columns), \(participants(of: "tasks")) FROM tasks WHERE cluster_id = $1 AND parent_id = $2 ORDER BY id LIMIT 1000
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
        let select = "SELECT \(columns), \(participants(of: "t")), (extract(epoch FROM t.created_at) * 1000000)::bigint AS created_micros FROM tasks t"
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

    /// A poll: records that the node is alive, takes up to $3 of its queued tasks whose run_after has
    /// passed, best priority first, skipping rows another claimer holds (queued → received, attempt + 1,
    /// a lease of $4 seconds or of the seconds $6 gives the task's type in $5), and lists the tasks it
    /// holds whose cancel was requested. A task waits while an earlier task with its ordering key is live —
    /// but not behind one queued to run more than $8 seconds from now (the longest retry backoff): a task
    /// put off to next week does not hold up the work behind it until then; it takes its turn when due.
    /// Each claim gets a fresh lease: 244 random bits (`gen_random_uuid` draws from the server's strong
    /// random source), returned once as `lease` and kept only as its SHA-256.
    /// Always one row at least: `node_found` and `cancel` on every row, one claimed task per row (none:
    /// a single row whose task columns are NULL). The claimed rows are updated by the tuple ids the
    /// locking read returned (the locks keep them current): no second index lookup for the planner to
    /// get wrong on a table whose statistics lag.
    static let poll = PostgresStatement("tasks.poll", """
        WITH touched AS (
            -- $7: record the node's heartbeat (the first look of a poll request; its re-checks do not),
            -- unless it was recorded less than a second ago: a look that claims nothing then writes
            -- nothing, and commits without waiting for a WAL flush (under a trickle of submits, every
            -- poll's first look was a write of its own).
            UPDATE nodes SET last_seen_at = now(), status = 'online'
             WHERE cluster_id = $1 AND id = $2 AND $7::boolean
               AND (status <> 'online' OR last_seen_at IS NULL OR last_seen_at < now() - interval '1 second')
            RETURNING id
        ), seen AS (
            SELECT id FROM touched
            UNION ALL
            SELECT id FROM nodes WHERE cluster_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM touched)
        ), picked AS (
            SELECT t.ctid, replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '') AS lease
              FROM tasks t
             WHERE t.cluster_id = $1 AND t.assigned_node = $2 AND t.state = 'queued'
               AND (t.run_after IS NULL OR t.run_after <= now())
               AND (t.ordering_key IS NULL OR NOT EXISTS (
                       SELECT 1 FROM tasks e
                        WHERE e.cluster_id = t.cluster_id AND e.ordering_key = t.ordering_key AND e.id < t.id
                          AND e.state IN ('queued', 'received')
                          AND NOT (e.state = 'queued' AND e.run_after IS NOT NULL
                                   AND e.run_after > now() + make_interval(secs => $8::double precision))))
               AND EXISTS (SELECT 1 FROM seen)
             ORDER BY t.priority DESC, t.id
             LIMIT $3
             FOR UPDATE SKIP LOCKED
        ), claimed AS (
            UPDATE tasks t
               SET state = 'received', attempt = t.attempt + 1, received_at = now(), updated_at = now(),
                   lease_expires_at = now() + make_interval(secs => coalesce(
                       (SELECT o.seconds FROM unnest($5::text[], $6::double precision[]) AS o (type, seconds)
                         WHERE o.type = t.type LIMIT 1),
                       $4::double precision)),
                   lease_hash = sha256(convert_to(p.lease, 'UTF8'))
              FROM picked p
             -- The state names the partition the ctids are of (a ctid is unique within one partition only).
             WHERE t.state = 'queued' AND t.ctid = ANY (ARRAY(SELECT ctid FROM picked)) AND t.ctid = p.ctid
            RETURNING t.*, p.lease
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt)
            SELECT cluster_id, id, 'queued', state, assigned_node, attempt FROM claimed
        ), header AS (
            SELECT EXISTS (SELECT 1 FROM seen) AS node_found,
                   ARRAY(SELECT id FROM tasks
                          WHERE cluster_id = $1 AND assigned_node = $2 AND state = 'received'
                            AND cancel_requested_at IS NOT NULL
                          ORDER BY id) AS cancel
        )
        SELECT header.node_found, header.cancel, claimed.lease, \(prefixed(columns, with: "claimed")),
               \(noParticipants)
          FROM header LEFT JOIN claimed ON true
         ORDER BY claimed.priority DESC, claimed.id
        """)

    /// Reports, many in one statement: received → completed | failed | cancelled, each only by the node
    /// holding it at that attempt (a stale item changes nothing and the others go ahead); a failure with
    /// attempts left goes back to queued, not before its backoff. Each participant's outcome becomes a
    /// `task_participants` row of the attempt, all in one insert. Items: $3 ids, $4 attempts, $5 states,
    /// $6 results, $7 errors, $8 event details, $9 backoffs, $17 leases (the secret each claim returned);
    /// participants: $10 item (1-based), $11 node, $12 state, $13 result, $14 error, $15 started,
    /// $16 finished, $18 rollback, $19 decided. Returns the reported tasks with `item`; their
    /// `participants` are those recorded before this report (the statement's snapshot).
    static let report = PostgresStatement("tasks.report", """
        WITH input AS (
            SELECT * FROM unnest($3::bigint[], $4::integer[], $5::text[], $6::text[], $7::text[], $8::text[],
                                 $9::double precision[], $17::text[])
                   WITH ORDINALITY AS i (id, attempt, state, result, error, detail, backoff, lease, item)
        ), participants AS (
            SELECT * FROM unnest($10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[],
                                 $15::timestamptz[], $16::timestamptz[], $18::text[], $19::boolean[])
                   WITH ORDINALITY AS p (item, node, state, result, error, started_at, finished_at, rollback,
                                         decided, position)
        ), reported_nodes AS (
            SELECT item, array_agg(node) AS nodes FROM participants GROUP BY item
        ), locked AS MATERIALIZED (
            -- FOR UPDATE, not NO KEY: finishing moves the row to the other partition (a delete), and a lock
            -- upgraded from a weaker one while a heartbeat waits on it deadlocks.
            \(lockInIDOrder("$3", strength: "UPDATE"))
        ), decided AS (
            -- Each item against its row as locked: held by this node at this attempt under this lease, its
            -- participants among the task's. A failure after a cancel was requested ends the task
            -- cancelled, attempts left or not: a cancel racing a failure is never lost to a retry.
            SELECT i.*, i.state = 'failed' AND l.attempt - l.budget_start < l.max_attempts
                        AND l.cancel_requested_at IS NULL AS retry,
                   CASE WHEN i.state = 'failed' AND l.cancel_requested_at IS NOT NULL THEN 'cancelled'
                        ELSE i.state END AS final_state
              FROM input i JOIN locked l ON l.id = i.id LEFT JOIN reported_nodes n ON n.item = i.item
             WHERE l.attempt = i.attempt AND l.lease_hash = sha256(convert_to(i.lease, 'UTF8'))
               AND coalesce(n.nodes, '{}') <@ l.participating_nodes
               -- Rollback grants went out for this attempt: it is being undone, not completed.
               AND (i.state <> 'completed' OR l.rollback_attempt IS DISTINCT FROM i.attempt)
        ), reported AS (
            -- By id, not by the tuple id the lock returned: a row a heartbeat updated after this
            -- statement's snapshot has a tuple id the snapshot cannot see; found by id, its update follows
            -- the row to the version locked above. Run without nested loops (`TaskStore.robustPlan`).
            UPDATE tasks t
               SET state = CASE WHEN d.retry THEN 'queued' ELSE d.final_state END,
                   result = d.result::jsonb, error = d.error,
                   finished_at = CASE WHEN d.retry THEN NULL ELSE now() END,
                   run_after = CASE WHEN d.retry THEN now() + make_interval(secs => d.backoff) ELSE t.run_after END,
                   updated_at = now(), lease_expires_at = NULL, lease_hash = NULL
              FROM decided d
             WHERE t.cluster_id = $1 AND t.state = 'received' AND t.id = ANY ($3::bigint[]) AND t.id = d.id
            RETURNING t.*, d.item, d.detail
        ), outcomes AS (
            INSERT INTO task_participants (cluster_id, task_id, node, attempt, state, result, error, started_at,
                                           finished_at, rollback, decided)
            SELECT r.cluster_id, r.id, p.node, r.attempt, p.state, p.result::jsonb, p.error, p.started_at,
                   coalesce(p.finished_at, now()), p.rollback::jsonb, coalesce(p.decided, false)
              FROM reported r JOIN participants p ON p.item = r.item
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
            SELECT cluster_id, id, 'received', state, assigned_node, attempt,
                   CASE WHEN state = 'queued'
                        THEN coalesce(detail::jsonb, '{}') || jsonb_build_object('retry_after', run_after)
                        ELSE detail::jsonb END
              FROM reported
        )
        -- unblocked_nodes: the nodes whose queued tasks waited on this one's ordering key.
        SELECT \(columns), \(participants(of: "r")), item,
               CASE WHEN r.ordering_key IS NOT NULL AND r.state <> 'queued'
                    THEN ARRAY(SELECT DISTINCT n.assigned_node FROM tasks n
                                WHERE n.cluster_id = r.cluster_id AND n.ordering_key = r.ordering_key
                                  AND n.state = 'queued')
                    ELSE '{}' END AS unblocked_nodes
          FROM reported r ORDER BY item
        """)

    /// Marks a held attempt as rolling back (a `completed` report of it is refused from now on), when the
    /// node holds it at that attempt ($3 id, $4 attempt) under that lease ($5), and the nodes to roll back
    /// ($6) are among its participants. Returns the task; no row otherwise.
    static let grantRollback = PostgresStatement("tasks.grant_rollback", """
        UPDATE tasks SET rollback_attempt = attempt
         WHERE cluster_id = $1 AND id = $3 AND assigned_node = $2 AND state = 'received' AND attempt = $4
           AND lease_hash = sha256(convert_to($5, 'UTF8')) AND $6::text[] <@ participating_nodes
        RETURNING \(columns), \(noParticipants)
        """)

    /// The tasks with these ids, to explain the items of a report that changed nothing.
    static let getMany = PostgresStatement("tasks.get_many", """
        SELECT \(columns), \(participants(of: "tasks")) FROM tasks WHERE cluster_id = $1 AND id = ANY ($2::bigint[])
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
        SELECT \(columns), \(participants(of: "tree")), depth FROM tree
         WHERE (depth, id) > ($3::integer, $4::bigint)
         ORDER BY depth, id
         LIMIT $5
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
    /// report from before the retry stays stale.
    static let retry = PostgresStatement("tasks.retry", """
        WITH target AS (
            SELECT cluster_id, id, state FROM tasks
             WHERE cluster_id = $1 AND id = $2 AND state IN ('failed', 'cancelled')
               FOR UPDATE
        ), retried AS (
            UPDATE tasks t
               SET state = 'queued', budget_start = t.attempt, result = NULL, error = NULL, progress = NULL,
                   run_after = NULL, received_at = NULL, finished_at = NULL, lease_expires_at = NULL,
                   cancel_requested_at = NULL, cancel_reason = NULL, updated_at = now()
              FROM target
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

    /// Tasks the node holds whose cancel was requested: the agent is to stop them.
    static let cancelRequested = PostgresStatement("tasks.cancel_requested", """
        SELECT id FROM tasks
         WHERE cluster_id = $1 AND assigned_node = $2 AND state = 'received' AND cancel_requested_at IS NOT NULL
         ORDER BY id
        """)

    /// `columns`, each qualified by `relation` (for statements that join).
    private static func prefixed(_ columns: String, with relation: String) -> String {
        columns.split(separator: ",").map { "\(relation).\($0.trimmingCharacters(in: .whitespacesAndNewlines))" }
            .joined(separator: ", ")
    }

    /// Locks the node's ($2) tasks among the ids in `ids` in id order, before a statement updates them. A
    /// report and a heartbeat of one node touch the same rows; each updating them in its own plan's order,
    /// they deadlocked under load (each deadlock a second's stall and a retry: 3-participant tasks fell
    /// from 1,271 to under 200 a second).
    /// With the columns the statements then check (as locked: current).
    private static func lockInIDOrder(_ ids: String, strength: String = "NO KEY UPDATE") -> String {
        """
        SELECT t.id, t.attempt, t.budget_start, t.max_attempts, t.cancel_requested_at, t.lease_hash,
                       t.participating_nodes, t.rollback_attempt
                  FROM tasks t
                 WHERE t.cluster_id = $1 AND t.id = ANY (\(ids)::bigint[]) AND t.assigned_node = $2 AND t.state = 'received'
                 ORDER BY t.id
                   FOR \(strength)
        """
    }

    /// A heartbeat: renews the lease (and records progress) of each task the node still holds at the
    /// attempt and under the lease ($7) it names; the others are lost to it.
    static let renewLeases = PostgresStatement("tasks.renew_leases", """
        WITH held AS (
            SELECT * FROM unnest($3::bigint[], $4::integer[], $5::text[], $7::text[]) AS h (id, attempt, progress, lease)
        ), locked AS MATERIALIZED (
            \(lockInIDOrder("$3"))
        ), renewed AS (
            UPDATE tasks t
               SET lease_expires_at = now() + make_interval(secs => $6::double precision),
                   progress = coalesce(held.progress::jsonb, t.progress), updated_at = now()
              FROM held JOIN locked l ON l.id = held.id
             WHERE t.cluster_id = $1 AND t.state = 'received' AND t.id = ANY ($3::bigint[]) AND t.id = l.id
               AND l.attempt = held.attempt AND l.lease_hash = sha256(convert_to(held.lease, 'UTF8'))
            RETURNING t.id, t.cancel_requested_at IS NOT NULL AS cancel
        )
        SELECT h.id, r.id IS NOT NULL AS held, coalesce(r.cancel, false) AS cancel
          FROM held h LEFT JOIN renewed r ON r.id = h.id
         ORDER BY h.id
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
        )
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

    static let all = [liveCounts, prune, tree, expireLeases, reassignFromOfflineNodes, cancelRequested, renewLeases, submissionContext, insert, insertGroup, byIdempotencyKey, insertBatch, leaseMatches, grantRollback, releaseUndelivered, probe, get, getMany, children, cursorOfID, poll,
                      report, participantOutcomes, cancel, retry, delete] + ListPath.allCases.map { list[$0]! }
}
