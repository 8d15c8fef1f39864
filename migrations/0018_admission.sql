-- Gang admission and concurrency keys (issue 24).
--
-- A task takes a slot on every node it occupies (its initiator and the participants of its attempt) and,
-- with a concurrency key, one of its key's: a claim takes them all or claims nothing, and every way out of
-- `received` gives them back. The counts live in `admission_slots`, one row per node and per key, locked in
-- one order (kind, name) by every statement that takes or gives back slots, so two claims or a claim and
-- a report never wait on each other in a cycle; and none of them locks a slot row and then waits on a task
-- row. A separate table, not a column of `nodes`: a poll writes its node's heartbeat into `nodes` first,
-- and would then hold its own node's row out of that order.
CREATE TABLE admission_slots (
    cluster_id text    NOT NULL REFERENCES clusters (id),
    kind       text    NOT NULL CHECK (kind IN ('node', 'key')),
    name       text    NOT NULL,
    -- Received tasks holding a slot here now.
    used       integer NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (cluster_id, kind, name)
) WITH (fillfactor = 50);

-- How many received tasks of one key may run at once, and what a task arriving when the key is full does:
-- `queue` (wait), `cancel_newest` (the arrival is cancelled), `cancel_in_progress` (the running one is).
ALTER TABLE tasks ADD COLUMN concurrency_key text;
ALTER TABLE tasks ADD COLUMN concurrency_limit integer CHECK (concurrency_limit >= 1);
ALTER TABLE tasks ADD COLUMN on_limit text NOT NULL DEFAULT 'queue'
    CHECK (on_limit IN ('queue', 'cancel_newest', 'cancel_in_progress'));
-- A task whose participant is offline waits for it (`wait`) or fails at once (`fail`).
ALTER TABLE tasks ADD COLUMN on_offline text NOT NULL DEFAULT 'wait' CHECK (on_offline IN ('wait', 'fail'));

CREATE INDEX tasks_concurrency_key_idx ON tasks_live (cluster_id, concurrency_key, id) WHERE concurrency_key IS NOT NULL;
-- The few queued tasks that fail when a participant goes offline, for the maintenance leader to find.
CREATE INDEX tasks_fail_offline_idx ON tasks_live (cluster_id, id) WHERE on_offline = 'fail';

-- Every registered node has its row, counting the tasks it takes part in now.
INSERT INTO admission_slots (cluster_id, kind, name, used)
SELECT n.cluster_id, 'node', n.id,
       (SELECT count(*) FROM tasks t
         WHERE t.cluster_id = n.cluster_id AND t.state = 'received'
           AND (n.id = t.assigned_node OR n.id = ANY (coalesce(t.attempt_nodes, t.participating_nodes))))
  FROM nodes n;

CREATE OR REPLACE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, task_events, task_participants, admission_slots TO taskyard_reader;
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
