-- Schedules (issue 25, item 1): a task request submitted at every slot of a cron expression.
CREATE TABLE schedules (
    cluster_id  text        NOT NULL REFERENCES clusters (id),
    id          text        NOT NULL CHECK (id ~ '^[A-Za-z0-9._-]{1,64}$'),
    cron        text        NOT NULL,
    timezone    text        NOT NULL DEFAULT 'UTC',
    -- The task request as the API took it (validated when the schedule was made or replaced).
    task        jsonb       NOT NULL,
    catch_up    text        NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'one', 'all')),
    paused      boolean     NOT NULL DEFAULT false,
    -- The next slot not yet submitted (NULL: none ever comes).
    next_run_at timestamptz,
    last_run_at timestamptz,
    last_task_id bigint,
    -- Every write adds one: the leader records a slot only on the schedule it read (a replace or a pause
    -- meanwhile wins).
    revision    bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_id, id)
);
-- What the maintenance leader looks for every second: the due, unpaused schedules.
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE NOT paused;

-- Each scheduled task names its schedule and slot. A slot is submitted once: its task's idempotency key is
-- `schedule:<id>:<slot>`, so a leader that submits a slot again (it died before recording it; leadership
-- moved) gets the task made the first time.
ALTER TABLE tasks ADD COLUMN schedule_id text;
ALTER TABLE tasks ADD COLUMN schedule_slot timestamptz;

-- The reader role reads the schedules, and the slot counts of gang admission (0020); the grant lists the
-- columns of tasks as they are now (0021–0023 added some).
CREATE OR REPLACE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, task_events, task_participants, admission_slots, admission_returns,
                    admission_slot_counts, schedules TO taskyard_reader;
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
