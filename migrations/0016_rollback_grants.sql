-- Rollback grants: once the server has signed them for an attempt (its initiator said the attempt
-- failed and asked to undo what succeeded), that attempt can only be reported failed or cancelled — a
-- `completed` report would record as done what its participants are undoing. Per attempt, so a later
-- attempt starts clean without anything resetting it. Not indexed: setting it is a HOT update.
ALTER TABLE tasks ADD COLUMN rollback_attempt integer;

-- Readers of the history see it too (the reader role's grants name every column they may read). Replacing
-- the function keeps its privileges (executable by its owner only).
CREATE OR REPLACE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, task_events, task_participants TO taskyard_reader;
    GRANT SELECT (id, cluster_id, type, state, payload, assigned_node, participating_nodes, parent_id, attempt,
                  max_attempts, budget_start, priority, run_after, timeout_seconds, lease_expires_at, ordering_key,
                  idempotency_key, opaque_id, affinity, abortable, internal, result, error, progress,
                  cancel_requested_at, cancel_reason, created_at, received_at, finished_at, updated_at, traceparent,
                  rollback_attempt)
        ON tasks TO taskyard_reader;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskyard_reader') THEN
        PERFORM taskyard_grant_reader();
    END IF;
END $$;
