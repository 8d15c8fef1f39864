-- The live queue and the finished history apart: `tasks` becomes a table partitioned by state, so that
-- the update that finishes a task (or retries one) moves its row between `tasks_live` (queued, received)
-- and `tasks_finished` (completed, failed, cancelled). Each partition carries only the indexes its rows
-- are read by: the queue's (claim, held, ordering) on the live side, the list indexes on the finished
-- side. A claim, a heartbeat or a report no longer writes an entry into an index that exists for the
-- history, vacuum of the busy live side never walks the history's indexes, and ten million finished
-- rows leave the live side as small as the queue.
--
-- What a partitioned table cannot have, and what stands in for it:
-- - A primary key or unique index must hold the partition key, so (cluster_id, id) is unique per
--   partition; ids are unique because one identity sequence hands them out (GENERATED ALWAYS).
-- - The idempotency key's uniqueness spans both sides: `task_idempotency_keys` is its arbiter, written in
--   the statement that inserts the task (the task row keeps its key and digest for readers).
-- - No foreign key can reference a partitioned table's non-unique key: the parent key (and its cascade)
--   is gone; submissions check the parent is live, and the delete and prune statements delete whole
--   trees themselves.
CREATE TABLE tasks_partitioned (
    id                  bigint      GENERATED ALWAYS AS IDENTITY,
    cluster_id          text        NOT NULL REFERENCES clusters (id),
    type                text        NOT NULL CHECK (type ~ '^[A-Za-z0-9._-]{1,64}$'),
    state               text        NOT NULL DEFAULT 'queued'
                                    CHECK (state IN ('queued', 'received', 'completed', 'failed', 'cancelled')),
    payload             jsonb       NOT NULL DEFAULT '{}',
    assigned_node       text        NOT NULL,
    participating_nodes text[]      NOT NULL CHECK (cardinality(participating_nodes) >= 1),
    parent_id           bigint,
    attempt             integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts        integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    budget_start        integer     NOT NULL DEFAULT 0,
    priority            integer     NOT NULL DEFAULT 0,
    run_after           timestamptz,
    timeout_seconds     integer     CHECK (timeout_seconds > 0),
    lease_expires_at    timestamptz,
    ordering_key        text,
    idempotency_key     text,
    opaque_id           text,
    affinity            text        NOT NULL DEFAULT 'any' CHECK (affinity IN ('any', 'strict')),
    abortable           boolean     NOT NULL DEFAULT true,
    internal            boolean     NOT NULL DEFAULT false,
    result              jsonb,
    error               text,
    progress            jsonb,
    cancel_requested_at timestamptz,
    cancel_reason       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    received_at         timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    lease_hash          bytea,
    idempotency_digest  text,
    traceparent         text,
    CHECK ((state IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK (state = 'received' OR lease_expires_at IS NULL)
) PARTITION BY LIST (state);

-- The live side is small and rewritten all the time: room on each page for a heartbeat's update to stay
-- on its page (HOT: it changes no indexed column, now that no index holds the lease expiry), and
-- autovacuum that keeps up. Its size swings from empty to a burst and back within seconds: autovacuum's
-- analyze, run at whatever moment, would tell the planner "empty" just before the next burst (measured:
-- reports of 1,000 tasks planned as nested loops over a seq scan, 200 ms each, heartbeats timing out on
-- their locks). It is analyzed only when it grows (the statistics keeper), so plans are made for a busy
-- queue; the hot statements read it by index and tuple id, which costs little when it is small.
CREATE TABLE tasks_live PARTITION OF tasks_partitioned FOR VALUES IN ('queued', 'received')
    WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
          autovacuum_analyze_threshold = 2000000000, autovacuum_vacuum_insert_scale_factor = 0.05);
-- The finished side only grows (until retention): full pages.
CREATE TABLE tasks_finished PARTITION OF tasks_partitioned FOR VALUES IN ('completed', 'failed', 'cancelled')
    WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05);

INSERT INTO tasks_partitioned (id, cluster_id, type, state, payload, assigned_node, participating_nodes, parent_id,
                               attempt, max_attempts, budget_start, priority, run_after, timeout_seconds,
                               lease_expires_at, ordering_key, idempotency_key, opaque_id, affinity, abortable,
                               internal, result, error, progress, cancel_requested_at, cancel_reason, created_at,
                               received_at, finished_at, updated_at, lease_hash, idempotency_digest, traceparent)
OVERRIDING SYSTEM VALUE
SELECT id, cluster_id, type, state, payload, assigned_node, participating_nodes, parent_id, attempt,
       max_attempts, budget_start, priority, run_after, timeout_seconds, lease_expires_at, ordering_key,
       idempotency_key, opaque_id, affinity, abortable, internal, result, error, progress, cancel_requested_at,
       cancel_reason, created_at, received_at, finished_at, updated_at, lease_hash, idempotency_digest, traceparent
  FROM tasks;

CREATE TABLE task_idempotency_keys (
    cluster_id      text   NOT NULL,
    idempotency_key text   NOT NULL,
    task_id         bigint NOT NULL,
    PRIMARY KEY (cluster_id, idempotency_key)
);
INSERT INTO task_idempotency_keys (cluster_id, idempotency_key, task_id)
SELECT cluster_id, idempotency_key, id FROM tasks WHERE idempotency_key IS NOT NULL;

SELECT setval(pg_get_serial_sequence('tasks_partitioned', 'id'), greatest((SELECT max(id) FROM tasks), 1),
              (SELECT max(id) IS NOT NULL FROM tasks));
DROP TABLE tasks;
ALTER TABLE tasks_partitioned RENAME TO tasks;
ALTER SEQUENCE tasks_partitioned_id_seq RENAME TO tasks_id_seq;

-- Both sides: a task by id (and the first at or after an id, for old cursors), its children.
CREATE UNIQUE INDEX tasks_live_pkey ON tasks_live (cluster_id, id);
CREATE UNIQUE INDEX tasks_finished_pkey ON tasks_finished (cluster_id, id);
CREATE INDEX tasks_live_parent_idx ON tasks_live (cluster_id, parent_id, created_at, id) WHERE parent_id IS NOT NULL;
CREATE INDEX tasks_finished_parent_idx ON tasks_finished (cluster_id, parent_id, created_at, id) WHERE parent_id IS NOT NULL;
-- The queue: what a poll claims, what a node holds (and whose leases run out), what waits on an
-- ordering key; and the live side of a task list, in page order.
CREATE INDEX tasks_claim_idx ON tasks_live (cluster_id, assigned_node, priority DESC, id) WHERE state = 'queued';
CREATE INDEX tasks_held_idx ON tasks_live (cluster_id, assigned_node) WHERE state = 'received';
CREATE INDEX tasks_ordering_key_idx ON tasks_live (cluster_id, ordering_key, id) WHERE ordering_key IS NOT NULL;
CREATE INDEX tasks_live_created_idx ON tasks_live (cluster_id, created_at, id);
-- The history: a page of every list filter, and retention's oldest finished roots.
CREATE INDEX tasks_created_idx ON tasks_finished (cluster_id, created_at, id);
CREATE INDEX tasks_listed_state_idx ON tasks_finished (cluster_id, state, created_at, id) WHERE state <> 'completed';
CREATE INDEX tasks_type_idx ON tasks_finished (cluster_id, type, created_at, id);
CREATE INDEX tasks_node_idx ON tasks_finished (cluster_id, assigned_node, created_at, id);
CREATE INDEX tasks_opaque_id_idx ON tasks_finished (cluster_id, opaque_id, created_at, id) WHERE opaque_id IS NOT NULL;
CREATE INDEX tasks_finished_roots_idx ON tasks_finished (finished_at) WHERE parent_id IS NULL;

ANALYZE tasks_finished;
