-- Re-drive only what failed (issue 24): the participants that run in the next attempt — those without a
-- completed outcome, unless the failed attempt rolled back. NULL: every participating node.
ALTER TABLE tasks ADD COLUMN attempt_nodes text[];

-- Readers of the history see it too (the reader role's grants name every column they may read).
CREATE OR REPLACE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, task_events, task_participants TO taskyard_reader;
    GRANT SELECT (id, cluster_id, type, state, payload, assigned_node, participating_nodes, parent_id, attempt,
                  max_attempts, budget_start, priority, run_after, timeout_seconds, lease_expires_at, ordering_key,
                  idempotency_key, opaque_id, affinity, abortable, internal, result, error, progress,
                  cancel_requested_at, cancel_reason, created_at, received_at, finished_at, updated_at, traceparent,
                  rollback_attempt, complete_when, attempt_nodes)
        ON tasks TO taskyard_reader;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskyard_reader') THEN
        PERFORM taskyard_grant_reader();
    END IF;
END $$;
