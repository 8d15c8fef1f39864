-- `taskyard_reader` reads the whole of `tasks`, so that `SELECT * FROM tasks` and a BI tool that lists a
-- table's columns work as they do on any other table. What a reader may not have left the table for one it
-- cannot read: a request's idempotency digest now sits beside its key in `task_idempotency_keys` (the
-- table that arbitrates keys already; only keyed submits write it). `lease_hash` stays: it is the SHA-256
-- of a claim's 244 random bits, which no one can turn back into the lease a report, heartbeat or rollback
-- grant must present — a reader can do nothing with it.
ALTER TABLE task_idempotency_keys ADD COLUMN digest text;

UPDATE task_idempotency_keys k SET digest = t.idempotency_digest
  FROM tasks t
 WHERE t.cluster_id = k.cluster_id AND t.id = k.task_id AND t.idempotency_digest IS NOT NULL;

ALTER TABLE tasks DROP COLUMN idempotency_digest;

CREATE OR REPLACE FUNCTION taskyard_grant_reader() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO taskyard_reader;
    GRANT SELECT ON clusters, nodes, tasks, task_events, task_participants, admission_slots, admission_returns,
                    admission_slot_counts, schedules, task_stats TO taskyard_reader;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'taskyard_reader') THEN
        PERFORM taskyard_grant_reader();
    END IF;
END $$;
