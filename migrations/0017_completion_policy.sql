-- Completion policies (issue 24): when a fan-out counts as done — `all` (the default: every task before
-- this), `any`, `quorum` (a strict majority), or the number N of `{"at_least": N}`.
ALTER TABLE tasks ADD COLUMN complete_when text NOT NULL DEFAULT 'all'
    CHECK (complete_when IN ('all', 'any', 'quorum') OR complete_when ~ '^[1-9][0-9]{0,2}$');

-- Readers of the history see it too (the reader role's grants name every column they may read).
CREATE OR REPLACE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, task_events, task_participants TO taskyard_reader;
    GRANT SELECT (id, cluster_id, type, state, payload, assigned_node, participating_nodes, parent_id, attempt,
                  max_attempts, budget_start, priority, run_after, timeout_seconds, lease_expires_at, ordering_key,
                  idempotency_key, opaque_id, affinity, abortable, internal, result, error, progress,
                  cancel_requested_at, cancel_reason, created_at, received_at, finished_at, updated_at, traceparent,
                  rollback_attempt, complete_when)
        ON tasks TO taskyard_reader;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskyard_reader') THEN
        PERFORM taskyard_grant_reader();
    END IF;
END $$;
