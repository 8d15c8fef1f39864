import Foundation
import Postgres
import TaskyardDomain

/// Every statement on `tasks`: the pieces they share here, each store's own in the file beside it
/// (`SubmissionSQL`, `QueueSQL`, `TaskReadsSQL`, `MaintenanceSQL`). Each transition writes its `task_events` row in the same statement, and
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
        created_at, received_at, finished_at, updated_at, traceparent, complete_when, attempt_nodes, concurrency_key,
        concurrency_limit, on_limit, on_offline, on_finish_type, on_finish_node, follow_up_id,
        schedule_id, schedule_slot
        """

    /// The latest recorded outcome of each participating node of the task row `relation` names (any
    /// attempt), as a jsonb array, times in µs since 1970: the task object's `participants` column, beside
    /// `columns` in every statement that returns tasks. An index walk of the task's few outcome rows.
    static func participants(of relation: String) -> String {
        participantsValue(of: relation) + " AS participants"
    }

    /// `participants(of:)`'s value, unnamed.
    static func participantsValue(of relation: String) -> String {
        """
        (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'node', p.node, 'attempt', p.attempt, 'state', p.state, 'result', p.result, 'error', p.error,
                    'started_us', (extract(epoch FROM p.started_at) * 1000000)::bigint,
                    'finished_us', (extract(epoch FROM p.finished_at) * 1000000)::bigint,
                    'rollback', p.rollback, 'decided', p.decided)), '[]'::jsonb)
           FROM (SELECT DISTINCT ON (q.node) q.* FROM task_participants q
                  WHERE q.cluster_id = \(relation).cluster_id AND q.task_id = \(relation).id
                  ORDER BY q.node, q.attempt DESC) p)
        """
    }

    /// A task just inserted has no outcomes yet; one just claimed has none of its new attempt, and the task
    /// object shows every participant of a received task without an outcome of its attempt as running: no
    /// earlier attempt's outcome can change that, so a claim reads none (one index walk a claim saved).
    static let noParticipants = "'[]'::jsonb AS participants"

    /// `columns`, each qualified by `relation` (for statements that join).
    static func prefixed(_ columns: String, with relation: String) -> String {
        columns.split(separator: ",").map { "\(relation).\($0.trimmingCharacters(in: .whitespacesAndNewlines))" }
            .joined(separator: ", ")
    }

    /// Locks the node's ($2) tasks among the ids in `ids` in id order, before a statement updates them. A
    /// report and a heartbeat of one node touch the same rows; each updating them in its own plan's order,
    /// they deadlocked under load (each deadlock a second's stall and a retry: 3-participant tasks fell
    /// from 1,271 to under 200 a second).
    /// With the columns the statements then check (as locked: current).
    static func lockInIDOrder(_ ids: String, strength: String = "NO KEY UPDATE") -> String {
        """
        SELECT t.id, t.attempt, t.budget_start, t.max_attempts, t.cancel_requested_at, t.lease_hash,
                       t.participating_nodes, t.rollback_attempt, t.complete_when, t.attempt_nodes, t.assigned_node,
                       t.concurrency_key
                  FROM tasks t
                 WHERE t.cluster_id = $1 AND t.id = ANY (\(ids)::bigint[]) AND t.assigned_node = $2 AND t.state = 'received'
                 ORDER BY t.id
                   FOR \(strength)
        """
    }

    /// A queued task of node `node` ($n) that may be claimed now, but for its slots: due, and not behind a
    /// live task of its ordering key — unless that one is queued to run more than $8 seconds from now (the
    /// longest retry backoff): a task put off to next week does not hold up the work behind it until then.
    static func claimable(by node: String, row t: String) -> String {
        """
        \(t).cluster_id = $1 AND \(t).assigned_node = \(node) AND \(t).state = 'queued'
                       AND (\(t).run_after IS NULL OR \(t).run_after <= now())
                       AND (\(t).ordering_key IS NULL OR NOT EXISTS (
                               SELECT 1 FROM tasks e
                                WHERE e.cluster_id = \(t).cluster_id AND e.ordering_key = \(t).ordering_key AND e.id < \(t).id
                                  AND e.state IN ('queued', 'received')
                                  AND NOT (e.state = 'queued' AND e.run_after IS NOT NULL
                                           AND e.run_after > now() + make_interval(secs => $8::double precision))))
        """
    }

    /// The nodes a task (row `t`) takes a slot on while received: its initiator and the participants its
    /// attempt runs (a re-driven attempt's carried participants run nothing), each once.
    static func occupiedNodes(of t: String) -> String {
        "array_append(array_remove(coalesce(\(t).attempt_nodes, \(t).participating_nodes), \(t).assigned_node), \(t).assigned_node)"
    }

    /// `waiting_for` of the task row `relation`: for a queued task, the nodes it would take a slot on that
    /// cannot take one now (every slot taken, offline); NULL for any other. Read where a person looks at
    /// tasks, never on the hot path.
    static func waitingFor(of relation: String) -> String {
        """
        CASE WHEN \(relation).state = 'queued' THEN ARRAY(
                   SELECT o.node FROM unnest(\(occupiedNodes(of: relation))) WITH ORDINALITY AS o (node, position)
                     LEFT JOIN nodes n ON n.cluster_id = \(relation).cluster_id AND n.id = o.node
                     LEFT JOIN admission_slot_counts s ON s.cluster_id = \(relation).cluster_id AND s.kind = 'node' AND s.name = o.node
                    WHERE n.id IS NULL OR n.status <> 'online' OR s.used >= n.capacity
                    ORDER BY o.position) END AS waiting_for
        """
    }

    /// The columns `nodeSlots` reads of a task row `t`: its initiator, and the participants its attempt runs.
    static func slotHolders(of t: String) -> String {
        "\(t).assigned_node AS initiator, coalesce(\(t).attempt_nodes, \(t).participating_nodes) AS nodes"
    }

    /// One row per node slot each task of `relation` (with `initiator` and `nodes`, as `slotHolders` gives)
    /// takes — the nodes of `occupiedNodes` — with `columns` (expressions of `r`) first, then `kind` and
    /// `name`. The initiator's row needs no array; the participants' are unnested only for a task that runs
    /// on another node than its initiator (most run on it alone).
    static func nodeSlots(of relation: String, selecting columns: String) -> String {
        """
        SELECT \(columns), 'node' AS kind, r.initiator AS name FROM \(relation) r
            UNION ALL
            SELECT \(columns), 'node', o.node FROM \(relation) r, unnest(r.nodes) AS o (node)
             WHERE (cardinality(r.nodes) > 1 OR r.nodes[1] <> r.initiator) AND o.node <> r.initiator
        """
    }

    /// CTEs (the rest of a `WITH`, named `<name>_…`) that give back the slots of the tasks `relation` lists
    /// — tasks that have just left `received`, with their `cluster_id`, `slotHolders` and
    /// `concurrency_key` — as `admission_returns` rows: no slot row is locked (a claim folds them in), so
    /// nothing that ends a task waits for a claim (migration 0020).
    static func releaseSlots(of relation: String, name: String) -> String {
        """
        \(name)_given_back AS (
                INSERT INTO admission_returns (cluster_id, kind, name, n)
                SELECT cluster_id, kind, name, count(*)::integer FROM (
                    \(nodeSlots(of: relation, selecting: "r.cluster_id"))
                    UNION ALL
                    SELECT r.cluster_id, 'key', r.concurrency_key FROM \(relation) r WHERE r.concurrency_key IS NOT NULL
                ) AS f GROUP BY cluster_id, kind, name
            )
        """
    }

    static let all = [liveCounts, prune, tree, expireLeases, reassignFromOfflineNodes, failOfflineWaiters, cancelRequested, renewLeases, submissionContext, insert, insertGroup, concurrencyOverflow, byIdempotencyKey, insertBatch, leaseMatches, grantRollback, releaseUndelivered, probe, get, getMany, children, cursorOfID, poll,
                      report, participantOutcomes, cancel, retry, delete] + ListPath.allCases.map { list[$0]! }
}
