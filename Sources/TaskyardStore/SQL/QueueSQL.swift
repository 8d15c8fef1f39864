import Foundation
import Postgres
import TaskyardDomain

/// The statements of `QueueStore`: poll, report, rollback grants, releasing undelivered claims, leases.
extension TasksSQL {
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
        ), unheld AS (
            SELECT cluster_id, \(slotHolders(of: "released")), concurrency_key FROM released
        ), \(releaseSlots(of: "unheld", name: "slots"))
        SELECT \(columns), \(participants(of: "released")) FROM released ORDER BY id
        """)

    /// Which of these tasks are held under these leases (to tell a stale report from an invalid one).
    static let leaseMatches = PostgresStatement("tasks.lease_matches", """
        SELECT t.id, t.rollback_attempt IS NOT DISTINCT FROM t.attempt AS rolling_back
          FROM unnest($2::bigint[], $3::text[]) AS r (id, lease)
          JOIN tasks t ON t.cluster_id = $1 AND t.id = r.id AND t.lease_hash = sha256(convert_to(r.lease, 'UTF8'))
        """)

    /// A poll: records that the node is alive, takes up to $3 of its queued tasks whose run_after has
    /// passed, best priority first, skipping rows another claimer holds (queued → received, attempt + 1,
    /// a lease of $4 seconds or of the seconds $6 gives the task's type in $5), and lists the tasks it
    /// holds whose cancel was requested. A task waits while an earlier task with its ordering key is live —
    /// but not behind one queued to run more than $8 seconds from now (the longest retry backoff): a task
    /// put off to next week does not hold up the work behind it until then; it takes its turn when due.
    /// Gang admission: a task is taken only when every node it runs on (and its concurrency key) has a free
    /// slot; the claim takes them all at its end (`taken`), or fails as a serialization conflict when a
    /// concurrent claim took them meanwhile (run again from fresh counts).
    /// Each claim gets a fresh lease: 244 random bits (`gen_random_uuid` draws from the server's strong
    /// random source), returned once as `lease` and kept only as its SHA-256.
    /// Always one row at least: `node_found`, `waiting` and `cancel` on every row, one claimed task per row (none:
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
        ), node_slots AS MATERIALIZED (
            -- The cluster's nodes with the slots they have in use, as this statement's snapshot has them:
            -- read once, without locks (`taken` checks the counts again as it takes its slots).
            SELECT s.name, s.used, n.capacity, n.status
              FROM admission_slot_counts s JOIN nodes n ON n.cluster_id = s.cluster_id AND n.id = s.name
             WHERE s.cluster_id = $1 AND s.kind = 'node'
        ), unavailable AS MATERIALIZED (
            -- The nodes that cannot take a task now: every slot taken, or offline (the polling node comes
            -- online with this poll). Candidates on them are not picked.
            SELECT coalesce(array_agg(name), '{}') AS nodes FROM node_slots
             WHERE used >= capacity OR (status <> 'online' AND name <> $2)
        ), picked AS (
            SELECT t.ctid, t.id, t.priority, t.concurrency_key, coalesce(t.concurrency_limit, 1) AS concurrency_limit,
                   \(slotHolders(of: "t")),
                   replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '') AS lease
              FROM tasks t
             WHERE \(claimable(by: "$2", row: "t"))
               -- (Its initiator is this node, online; a full one is caught by the locked count.)
               AND ((SELECT cardinality(nodes) = 0 FROM unavailable)
                    OR NOT (coalesce(t.attempt_nodes, t.participating_nodes) && (SELECT nodes FROM unavailable)))
               AND (t.concurrency_key IS NULL OR (SELECT k.used FROM admission_slot_counts k
                                                   WHERE k.cluster_id = t.cluster_id AND k.kind = 'key'
                                                     AND k.name = t.concurrency_key) < coalesce(t.concurrency_limit, 1))
               AND EXISTS (SELECT 1 FROM seen)
             ORDER BY t.priority DESC, t.id
             LIMIT $3
             FOR UPDATE SKIP LOCKED
        ), wanted AS (
            -- Every slot each candidate needs.
            \(nodeSlots(of: "picked", selecting: "r.id, r.priority, NULL::integer AS key_limit"))
            UNION ALL
            SELECT p.id, p.priority, p.concurrency_limit, 'key', p.concurrency_key FROM picked p WHERE p.concurrency_key IS NOT NULL
        ), demand AS (
            SELECT kind, name, count(*)::integer AS wanted, min(key_limit) AS key_limit FROM wanted GROUP BY kind, name
        ), slots AS MATERIALIZED (
            -- The counts of the slots wanted, unlocked: the nodes' as read above, the keys' (no capacity: each
            -- task names its limit) as the snapshot has them.
            SELECT 'node' AS kind, name, used, capacity FROM node_slots
            UNION ALL
            SELECT s.kind, s.name, s.used, NULL::integer FROM admission_slot_counts s
             WHERE s.cluster_id = $1 AND s.kind = 'key' AND s.name IN (SELECT name FROM demand WHERE kind = 'key')
        ), crowded AS MATERIALIZED (
            -- The slots more candidates want than they have room for. Mostly none: then every candidate is
            -- claimed, and nothing is ranked.
            SELECT d.kind, d.name FROM demand d LEFT JOIN slots s ON s.kind = d.kind AND s.name = d.name
             WHERE s.used IS NULL OR s.used + d.wanted > coalesce(s.capacity, d.key_limit)
        ), admitted AS (
            -- Gang admission where slots are crowded: a candidate is claimed only when every slot it needs is
            -- free, counting the candidates before it that want the same slot (one turned away still counts:
            -- the count errs on the side of a full node, and the next poll takes what this one left).
            SELECT w.id
              FROM (SELECT w.*, row_number() OVER (PARTITION BY w.kind, w.name ORDER BY w.priority DESC, w.id) AS rank
                      FROM wanted w) AS w
              LEFT JOIN slots s ON s.kind = w.kind AND s.name = w.name
             GROUP BY w.id
            HAVING bool_and(s.used IS NOT NULL AND s.used + w.rank <= coalesce(s.capacity, w.key_limit))
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
             WHERE t.state = 'queued'
               AND t.ctid = ANY (ARRAY(SELECT ctid FROM picked
                                        WHERE NOT EXISTS (SELECT 1 FROM crowded) OR id IN (SELECT id FROM admitted)))
               AND t.ctid = p.ctid
            RETURNING t.*, p.lease
        ), events AS (
            INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt)
            SELECT cluster_id, id, 'queued', state, assigned_node, attempt FROM claimed
        ), took AS (
            SELECT kind, name, count(*)::integer AS n, min(key_limit) AS key_limit
              FROM wanted WHERE id IN (SELECT id FROM claimed) GROUP BY kind, name
        ), slot_locks AS MATERIALIZED (
            -- Last, after the claim is written: the slot rows are held only through the events' insert and
            -- the commit (ordering them after the events too cost a tenth of the statement, to return and
            -- count the events' rows). In one order (cluster, kind, name): two claims never wait on each other
            -- in a cycle, and no claim waits for a task row after this (its candidates were taken with SKIP
            -- LOCKED).
            SELECT s.kind, s.name FROM admission_slots s
             WHERE s.cluster_id = $1 AND (s.kind, s.name) IN (SELECT kind, name FROM took)
               AND (SELECT count(*) FROM claimed) >= 0
             ORDER BY s.cluster_id, s.kind, s.name
               FOR NO KEY UPDATE
        ), folded AS (
            -- The returns of these slots (migration 0020), folded into their rows now that this claim holds
            -- them: no other claim can fold them meanwhile. Those committed after this statement's snapshot
            -- wait for the next claim.
            DELETE FROM admission_returns r
             WHERE r.cluster_id = $1 AND (r.kind, r.name) IN (SELECT kind, name FROM took)
               AND (SELECT count(*) FROM slot_locks) >= 0
            RETURNING r.kind, r.name, r.n
        ), taken AS (
            -- Each slot's count as now committed, less its returns, plus this claim's: over the slot's room
            -- means a concurrent claim took it since this statement's snapshot (checked in `header`).
            UPDATE admission_slots s
               SET used = greatest(s.used - coalesce((SELECT sum(f.n) FROM folded f WHERE f.kind = s.kind AND f.name = s.name), 0), 0) + d.n
              FROM took d LEFT JOIN nodes n ON d.kind = 'node' AND n.cluster_id = $1 AND n.id = d.name
             WHERE s.cluster_id = $1 AND s.kind = d.kind AND s.name = d.name AND (SELECT count(*) FROM slot_locks) >= 0
            RETURNING s.kind, s.name, s.used, coalesce(n.capacity, d.key_limit) AS room
        ), header AS (
            -- waiting: nothing claimed, though a task is due (its slots are taken, or another claim holds it).
            SELECT EXISTS (SELECT 1 FROM seen) AS node_found,
                   (SELECT bool_and(taskyard_slots_taken_meanwhile(kind, name)) FROM taken WHERE used > room) AS overfilled,
                   NOT EXISTS (SELECT 1 FROM claimed)
                       AND EXISTS (SELECT 1 FROM tasks t WHERE \(claimable(by: "$2", row: "t"))) AS waiting,
                   ARRAY(SELECT id FROM tasks
                          WHERE cluster_id = $1 AND assigned_node = $2 AND state = 'received'
                            AND cancel_requested_at IS NOT NULL
                          ORDER BY id) AS cancel
        )
        -- overfilled: read so that the check runs (NULL unless it raised).
        SELECT header.node_found, header.overfilled, header.waiting, header.cancel, claimed.lease, \(prefixed(columns, with: "claimed")),
               -- A re-driven attempt's claim carries the outcomes it carries forward; any other has none yet.
               CASE WHEN claimed.attempt_nodes IS NULL THEN '[]'::jsonb ELSE \(participantsValue(of: "claimed")) END
                   AS participants
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
    /// `participants` are those recorded before this report (the statement's snapshot), when $20 asks for them.
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
            -- Per item, in one pass over the participants (not a scan of them per item).
            SELECT item, array_agg(node) AS nodes, count(*) FILTER (WHERE state = 'completed') AS completed,
                   bool_or(rollback::jsonb ->> 'state' = 'completed') AS rolled_back,
                   array_agg(node) FILTER (WHERE state = 'completed') AS completed_nodes
              FROM participants GROUP BY item
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
                   -- The next attempt re-drives only this attempt's participants without a completed outcome,
                   -- unless a rollback undid what completed (then all of them).
                   CASE WHEN i.state <> 'failed' OR coalesce(n.rolled_back, false) THEN NULL
                        ELSE ARRAY(SELECT node FROM unnest(coalesce(l.attempt_nodes, l.participating_nodes)) AS a (node)
                                    WHERE NOT (a.node = ANY (coalesce(n.completed_nodes, '{}'))))
                        END AS next_nodes,
                   CASE WHEN i.state = 'failed' AND l.cancel_requested_at IS NOT NULL THEN 'cancelled'
                        ELSE i.state END AS final_state,
                   -- The slots the attempt holds, from the row as locked (a retry changes its attempt_nodes).
                   \(slotHolders(of: "l")), l.concurrency_key AS slot_key
              FROM input i JOIN locked l ON l.id = i.id LEFT JOIN reported_nodes n ON n.item = i.item
             WHERE l.attempt = i.attempt AND l.lease_hash = sha256(convert_to(i.lease, 'UTF8'))
               AND coalesce(n.nodes, '{}') <@ l.participating_nodes
               -- Rollback grants went out for this attempt: it is being undone, not completed.
               AND (i.state <> 'completed' OR l.rollback_attempt IS DISTINCT FROM i.attempt)
               -- A completed report with its participants' outcomes meets the task's completion policy,
               -- counting the completed outcomes carried forward from earlier attempts (the participants
               -- this attempt does not run).
               AND (i.state <> 'completed' OR n.nodes IS NULL
                    OR n.completed + cardinality(l.participating_nodes) - cardinality(coalesce(l.attempt_nodes, l.participating_nodes))
                       >= CASE l.complete_when WHEN 'all' THEN cardinality(l.participating_nodes) WHEN 'any' THEN 1
                               WHEN 'quorum' THEN cardinality(l.participating_nodes) / 2 + 1
                               ELSE l.complete_when::integer END)
        ), reported AS (
            -- By id, not by the tuple id the lock returned: a row a heartbeat updated after this
            -- statement's snapshot has a tuple id the snapshot cannot see; found by id, its update follows
            -- the row to the version locked above. Run without nested loops (`TaskStore.robustPlan`).
            UPDATE tasks t
               SET state = CASE WHEN d.retry THEN 'queued' ELSE d.final_state END,
                   result = d.result::jsonb, error = d.error,
                   finished_at = CASE WHEN d.retry THEN NULL ELSE now() END,
                   run_after = CASE WHEN d.retry THEN now() + make_interval(secs => d.backoff) ELSE t.run_after END,
                   attempt_nodes = CASE WHEN d.retry AND cardinality(d.next_nodes) > 0
                                             AND cardinality(d.next_nodes) < cardinality(t.participating_nodes)
                                        THEN d.next_nodes WHEN d.retry THEN NULL ELSE t.attempt_nodes END,
                   updated_at = now(), lease_expires_at = NULL, lease_hash = NULL
              FROM decided d
             WHERE t.cluster_id = $1 AND t.state = 'received' AND t.id = ANY ($3::bigint[]) AND t.id = d.id
            RETURNING t.*, d.item, d.detail, d.initiator, d.nodes, d.slot_key
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
        ), unheld AS (
            SELECT cluster_id, initiator, nodes, slot_key AS concurrency_key FROM reported
        ), \(releaseSlots(of: "unheld", name: "slots"))
        -- unblocked_nodes: the nodes whose queued tasks waited on this one's ordering key.
        -- $20: whether the caller shows the tasks' earlier outcomes (one report answers with its task; a batch's
        -- items answer with their state alone, and a lookup of outcomes per task is a tenth of a batch's time).
        SELECT \(columns), CASE WHEN $20::boolean THEN \(participantsValue(of: "r")) ELSE '[]'::jsonb END AS participants, item,
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

    /// Tasks the node holds whose cancel was requested: the agent is to stop them.
    static let cancelRequested = PostgresStatement("tasks.cancel_requested", """
        SELECT id FROM tasks
         WHERE cluster_id = $1 AND assigned_node = $2 AND state = 'received' AND cancel_requested_at IS NOT NULL
         ORDER BY id
        """)

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
}

/// `QueueStore`'s statements with their parameters as named fields (`PostgresTypedStatement`): the one
/// place each `$n` is bound. Public so that the plan test explains them as the store runs them.
public enum QueueStatements {
    /// `TasksSQL.poll`. Rows: the header columns on each, a claimed task (with `lease`) on each but an empty one.
    public struct Poll: PostgresTypedStatement {
        public static var statement: PostgresStatement { TasksSQL.poll }
        public var cluster: String
        public var node: String
        public var limit: Int
        public var lease: Duration
        public var leaseByType: [String: Duration] = [:]
        /// The first look of a poll request records a heartbeat; its re-checks do not.
        public var recordHeartbeat = true
        /// A queued task due further ahead than this no longer holds its ordering key.
        public var orderingHold: Duration

        public init(cluster: String, node: String, limit: Int, lease: Duration, leaseByType: [String: Duration] = [:],
                    recordHeartbeat: Bool = true, orderingHold: Duration) {
            (self.cluster, self.node, self.limit, self.lease) = (cluster, node, limit, lease)
            (self.leaseByType, self.recordHeartbeat, self.orderingHold) = (leaseByType, recordHeartbeat, orderingHold)
        }

        public var bindings: [any PostgresEncodable] {
            let overrides = leaseByType.sorted { $0.key < $1.key }
            return [cluster, node, limit, lease.inSeconds, overrides.map(\.key), overrides.map(\.value.inSeconds),
                    recordHeartbeat, orderingHold.inSeconds]
        }
    }

    /// One item of a report as `TasksSQL.report` takes it.
    public struct ReportItem: Sendable {
        public var taskID: Int64
        public var attempt: Int
        public var state: ReportedState
        public var result: RawJSON?
        public var error: String?
        /// The `task_events` detail of the transition, as JSON text.
        public var eventDetail: String?
        /// The backoff before the next attempt when the item fails with attempts left.
        public var retryDelay: Duration
        public var lease: String
        /// The participants' outcomes, times stamped as they will be stored.
        public var participants: [ParticipantOutcome]

        public init(taskID: Int64, attempt: Int, state: ReportedState, result: RawJSON?, error: String?, eventDetail: String?,
                    retryDelay: Duration, lease: String, participants: [ParticipantOutcome]) {
            (self.taskID, self.attempt, self.state, self.result, self.error) = (taskID, attempt, state, result, error)
            (self.eventDetail, self.retryDelay, self.lease, self.participants) = (eventDetail, retryDelay, lease, participants)
        }
    }

    /// `TasksSQL.report`: many reports of one node in one statement.
    public struct Report: PostgresTypedStatement {
        public static var statement: PostgresStatement { TasksSQL.report }
        public var cluster: String
        public var node: String
        public var items: [ReportItem]
        /// Whether each reported task comes back with the outcomes recorded before the report (else none).
        public var withEarlierOutcomes: Bool

        public init(cluster: String, node: String, items: [ReportItem], withEarlierOutcomes: Bool) {
            (self.cluster, self.node, self.items, self.withEarlierOutcomes) = (cluster, node, items, withEarlierOutcomes)
        }

        public var bindings: [any PostgresEncodable] {
            var participantItems: [Int64] = []
            var participants: [ParticipantOutcome] = []
            for (position, item) in items.enumerated() {
                participantItems += Array(repeating: Int64(position + 1), count: item.participants.count)
                participants += item.participants
            }
            return [
                cluster, node, items.map(\.taskID), items.map(\.attempt), items.map(\.state.rawValue),
                items.map { $0.result?.text }, items.map(\.error), items.map(\.eventDetail),
                items.map(\.retryDelay.inSeconds),
                participantItems, participants.map(\.node), participants.map(\.state.rawValue),
                participants.map { $0.result?.text }, participants.map(\.error), participants.map(\.startedAt),
                participants.map(\.finishedAt), items.map(\.lease),
                participants.map { $0.rollback?.json.jsonText }, participants.map(\.decided), withEarlierOutcomes,
            ]
        }

        /// A reported task: the position of its item, the task as the statement left it (participants as
        /// recorded before it), and the nodes whose queued work its end let go (a freed ordering key).
        public struct Reported: Sendable {
            public var position: Int
            public var task: TaskRecord
            public var unblockedNodes: [String]
        }

        public func decodeRow(_ row: PostgresRow) throws(PostgresError) -> Reported {
            Reported(position: Int(try row.decode("item", as: Int64.self)) - 1, task: try TaskRecord(row: row),
                     unblockedNodes: try row.decode("unblocked_nodes"))
        }
    }

    /// `TasksSQL.renewLeases`: a heartbeat's renewals.
    public struct RenewLeases: PostgresTypedStatement {
        public static var statement: PostgresStatement { TasksSQL.renewLeases }
        public var cluster: String
        public var node: String
        public var tasks: [HeldTask]
        public var lease: Duration

        public init(cluster: String, node: String, lease: Duration, tasks: [HeldTask]) {
            (self.cluster, self.node, self.tasks, self.lease) = (cluster, node, tasks, lease)
        }

        public var bindings: [any PostgresEncodable] {
            [cluster, node, tasks.map(\.id), tasks.map(\.attempt), tasks.map { $0.progress?.json.jsonText }, lease.inSeconds,
             tasks.map(\.lease)]
        }

        public struct Renewal: Sendable {
            public var id: Int64
            public var held: Bool
            public var cancel: Bool
        }

        public func decodeRow(_ row: PostgresRow) throws(PostgresError) -> Renewal {
            Renewal(id: try row.decode("id"), held: try row.decode("held"), cancel: try row.decode("cancel"))
        }
    }

    /// `TasksSQL.releaseUndelivered`: claims whose answer never reached their agent, queued again.
    public struct ReleaseUndelivered: PostgresTypedStatement {
        public static var statement: PostgresStatement { TasksSQL.releaseUndelivered }
        public var cluster: String
        public var node: String
        public var claims: [(taskID: Int64, lease: String)]

        public var bindings: [any PostgresEncodable] { [cluster, node, claims.map(\.taskID), claims.map(\.lease)] }
        public func decodeRow(_ row: PostgresRow) throws(PostgresError) -> TaskRecord { try TaskRecord(row: row) }
    }

    /// `TasksSQL.grantRollback`: marks a held attempt as rolling back on `nodes`.
    public struct GrantRollback: PostgresTypedStatement {
        public static var statement: PostgresStatement { TasksSQL.grantRollback }
        public var cluster: String
        public var node: String
        public var taskID: Int64
        public var attempt: Int
        public var lease: String
        public var nodes: [String]

        public var bindings: [any PostgresEncodable] { [cluster, node, taskID, attempt, lease, nodes] }
        public func decodeRow(_ row: PostgresRow) throws(PostgresError) -> TaskRecord { try TaskRecord(row: row) }
    }
}
