-- Fan-out semantics (issue 24).
-- When a fan-out counts as done: `all` (the default: every task before this), `any`, `quorum` (a strict
-- majority), or the number N of `{"at_least": N}`.
ALTER TABLE tasks ADD COLUMN complete_when text NOT NULL DEFAULT 'all'
    CHECK (complete_when IN ('all', 'any', 'quorum') OR complete_when ~ '^[1-9][0-9]{0,2}$');
-- Re-drive only what failed: the participants that run in the next attempt — those without a completed
-- outcome, unless the failed attempt rolled back. NULL: every participating node.
ALTER TABLE tasks ADD COLUMN attempt_nodes text[];

-- Readers of the history see every column of `tasks` but the secrets (the claim's lease hash and the
-- idempotency digest), the ones to come included: the grant lists the table's columns as they are when it
-- runs, so a migration that adds a column only runs it again. Replacing the function keeps its privileges
-- (executable by its owner only).
CREATE OR REPLACE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, task_events, task_participants TO taskyard_reader;
    EXECUTE format('GRANT SELECT (%s) ON tasks TO taskyard_reader',
                   (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
                     WHERE attrelid = 'tasks'::regclass AND attnum > 0 AND NOT attisdropped
                       AND attname NOT IN ('lease_hash', 'idempotency_digest')));
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskyard_reader') THEN
        PERFORM taskyard_grant_reader();
    END IF;
END $$;
