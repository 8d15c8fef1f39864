-- Taskyard's initial schema: clusters, nodes, tasks and their history.
-- cluster_id leads every key, so that tasks can be distributed by cluster (Citus) without a protocol change.

CREATE TABLE clusters (
    id          text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    name        text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    cluster_id    text        NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    id            text        NOT NULL CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    endpoint      text        NOT NULL,
    status        text        NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'offline')),
    labels        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    capacity      integer     NOT NULL DEFAULT 16 CHECK (capacity > 0),
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_id, id)
);

CREATE TABLE tasks (
    id                  bigint      GENERATED ALWAYS AS IDENTITY,
    cluster_id          text        NOT NULL REFERENCES clusters (id),
    type                text        NOT NULL CHECK (type ~ '^[A-Za-z0-9._-]{1,64}$'),
    state               text        NOT NULL DEFAULT 'queued'
                                    CHECK (state IN ('queued', 'received', 'completed', 'failed', 'cancelled')),
    payload             jsonb       NOT NULL DEFAULT '{}',
    -- The initiator: the node whose agent claims the task and runs its fan-out.
    assigned_node       text        NOT NULL,
    participating_nodes text[]      NOT NULL CHECK (cardinality(participating_nodes) >= 1),
    parent_id           bigint,
    -- Claims so far. A report names the attempt it belongs to; reports for older attempts are refused.
    attempt             integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts        integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    -- The attempt count when the current attempt budget began (a manual retry starts a fresh budget
    -- without reusing attempt numbers, which fence stale reports).
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
    PRIMARY KEY (cluster_id, id),
    FOREIGN KEY (cluster_id, parent_id) REFERENCES tasks (cluster_id, id) ON DELETE CASCADE,
    -- A terminal task has finished_at; a live one has not.
    CHECK ((state IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    -- Only a received task holds a lease.
    CHECK (state = 'received' OR lease_expires_at IS NULL)
);

-- Claim: the queued tasks of one node, best priority first. Partial, so finished history costs nothing.
CREATE INDEX tasks_claim_idx ON tasks (cluster_id, assigned_node, priority DESC, id) WHERE state = 'queued';
-- Lease expiry: received tasks by lease end.
CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE state = 'received';
-- Tasks a node holds (heartbeats, node listing).
CREATE INDEX tasks_held_idx ON tasks (cluster_id, assigned_node) WHERE state = 'received';
-- Children of a task (trees, task detail, cascading deletes).
CREATE INDEX tasks_parent_idx ON tasks (cluster_id, parent_id) WHERE parent_id IS NOT NULL;
-- One task per idempotency key and cluster.
CREATE UNIQUE INDEX tasks_idempotency_key_idx ON tasks (cluster_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Listing by creation time and finding tasks by X-Opaque-Id.
CREATE INDEX tasks_created_idx ON tasks (cluster_id, created_at);
CREATE INDEX tasks_opaque_id_idx ON tasks (cluster_id, opaque_id) WHERE opaque_id IS NOT NULL;

-- One row per state transition, written in the transaction that makes it: the task history for SQL.
CREATE TABLE task_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    cluster_id  text        NOT NULL,
    task_id     bigint      NOT NULL,
    from_state  text        CHECK (from_state IN ('queued', 'received', 'completed', 'failed', 'cancelled')),
    to_state    text        NOT NULL CHECK (to_state IN ('queued', 'received', 'completed', 'failed', 'cancelled')),
    node        text,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    detail      jsonb,
    PRIMARY KEY (cluster_id, id),
    FOREIGN KEY (cluster_id, task_id) REFERENCES tasks (cluster_id, id) ON DELETE CASCADE
);

CREATE INDEX task_events_task_idx ON task_events (cluster_id, task_id, id);
