-- Charts (issue 27, item 1): per minute and per hour (`grain`, in seconds), and per scope — the whole
-- cluster (scope '', name ''), one task type ('type', its name) or one initiating node ('node', its id) —
-- what finished, the most tasks queued and received at one sample, and histograms of pick-up and run times
-- (`StatsHistogram`'s buckets, counts summed bucket by bucket). The maintenance leader keeps it: finished
-- tasks from the change feed (a position per cluster, so a transaction that commits late is counted once,
-- in the minute its event was written), live counts sampled. `GET …/stats` reads a window of it, a week in
-- hours; every replica reads the same rows.
CREATE TABLE task_stats (
    cluster_id text        NOT NULL,
    scope      text        NOT NULL CHECK (scope IN ('', 'type', 'node')),
    name       text        NOT NULL,
    grain      integer     NOT NULL CHECK (grain IN (60, 3600)),
    start      timestamptz NOT NULL,
    completed  integer     NOT NULL DEFAULT 0,
    failed     integer     NOT NULL DEFAULT 0,
    cancelled  integer     NOT NULL DEFAULT 0,
    queued     integer     NOT NULL DEFAULT 0,
    received   integer     NOT NULL DEFAULT 0,
    pickup     integer[]   NOT NULL DEFAULT '{}',
    run        integer[]   NOT NULL DEFAULT '{}',
    PRIMARY KEY (cluster_id, scope, name, grain, start)
);
-- Old buckets are dropped by time.
CREATE INDEX task_stats_start_idx ON task_stats (start);

-- Where each cluster's rollup stands in the change feed: every finished event before it is counted.
CREATE TABLE task_stats_positions (
    cluster_id   text   PRIMARY KEY,
    cursor_xid   xid8   NOT NULL DEFAULT '0',
    cursor_event bigint NOT NULL DEFAULT 0
);

-- Two histograms added bucket by bucket (the shorter one counts as zeros past its end).
CREATE FUNCTION taskyard_add_counts(a integer[], b integer[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}')
      FROM unnest(a, b) WITH ORDINALITY AS u (x, y, i)
$$;

CREATE OR REPLACE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, task_events, task_participants, admission_slots, admission_returns,
                    admission_slot_counts, schedules, task_stats TO taskyard_reader;
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
