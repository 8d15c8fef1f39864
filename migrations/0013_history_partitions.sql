-- The finished history in ranges of task ids, so that retention drops whole partitions instead of deleting
-- rows one by one (and vacuuming their index entries away afterwards). `tasks_finished`, `task_events` and
-- `task_participants` are each partitioned by RANGE of the task id, with the same bounds: a range holds a
-- task, its events and its participants' outcomes, and one drop removes all three.
--
-- Why ids, not times: the identity sequence hands ids out in submission order, so a range is a stretch of
-- time; and every row of the three tables knows its task id from the moment it is written (an event is
-- written long before its task has a finish time). A sub-task is made while its parent is live, so it has
-- a higher id than its parent: a tree starts in one range and may reach into later ones, never earlier
-- ones. Ranges are therefore dropped oldest first, each with the later members of its trees.
--
-- Ranges are made ahead of the sequence by the maintenance leader (`taskyard_extend_history`), sized by how
-- many ids the last period used. Rows whose range does not exist yet (a burst faster than the leader)
-- land in each table's `_overflow` partition, from which retention deletes them row by row; new ranges
-- start above them.

-- The ranges, one row each. `ids_at_creation` is the sequence's position when the range was made: the
-- rate that sizes the next one.
CREATE TABLE history_partitions (
    lower_id        bigint      PRIMARY KEY,
    upper_id        bigint      NOT NULL CHECK (upper_id > lower_id),
    ids_at_creation bigint      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    -- Every id handed out so far is below `first_free`: the existing history is one range below it.
    first_free bigint := (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM tasks_id_seq);
    events_next bigint := (SELECT coalesce(max(id), 0) + 1 FROM task_events);
BEGIN
    -- tasks: the finished side becomes a table partitioned by id; the old side is its first range.
    ALTER TABLE tasks DETACH PARTITION tasks_finished;
    ALTER TABLE tasks_finished RENAME TO tasks_finished_0;
    ALTER INDEX tasks_finished_pkey RENAME TO tasks_finished_0_pkey;
    ALTER INDEX tasks_finished_parent_idx RENAME TO tasks_finished_0_parent_idx;
    ALTER INDEX tasks_created_idx RENAME TO tasks_finished_0_created_idx;
    ALTER INDEX tasks_listed_state_idx RENAME TO tasks_finished_0_listed_state_idx;
    ALTER INDEX tasks_type_idx RENAME TO tasks_finished_0_type_idx;
    ALTER INDEX tasks_node_idx RENAME TO tasks_finished_0_node_idx;
    ALTER INDEX tasks_opaque_id_idx RENAME TO tasks_finished_0_opaque_id_idx;
    ALTER INDEX tasks_finished_roots_idx RENAME TO tasks_finished_0_roots_idx;
    CREATE TABLE tasks_finished PARTITION OF tasks FOR VALUES IN ('completed', 'failed', 'cancelled')
        PARTITION BY RANGE (id);
    -- The same indexes as before (a unique one may hold here: it contains the partition key); the old
    -- side's are attached to them as they are, without a rebuild.
    CREATE UNIQUE INDEX tasks_finished_pkey ON tasks_finished (cluster_id, id);
    CREATE INDEX tasks_finished_parent_idx ON tasks_finished (cluster_id, parent_id, created_at, id) WHERE parent_id IS NOT NULL;
    CREATE INDEX tasks_created_idx ON tasks_finished (cluster_id, created_at, id);
    CREATE INDEX tasks_listed_state_idx ON tasks_finished (cluster_id, state, created_at, id) WHERE state <> 'completed';
    CREATE INDEX tasks_type_idx ON tasks_finished (cluster_id, type, created_at, id);
    CREATE INDEX tasks_node_idx ON tasks_finished (cluster_id, assigned_node, created_at, id);
    CREATE INDEX tasks_opaque_id_idx ON tasks_finished (cluster_id, opaque_id, created_at, id) WHERE opaque_id IS NOT NULL;
    CREATE INDEX tasks_finished_roots_idx ON tasks_finished (finished_at) WHERE parent_id IS NULL;
    EXECUTE format('ALTER TABLE tasks_finished ATTACH PARTITION tasks_finished_0 FOR VALUES FROM (MINVALUE) TO (%s)', first_free);

    -- task_events: partitioned by its task's id; its own ids stay unique through its identity sequence.
    ALTER TABLE task_events RENAME TO task_events_0;
    ALTER TABLE task_events_0 DROP CONSTRAINT task_events_pkey;
    ALTER TABLE task_events_0 ALTER COLUMN id DROP IDENTITY;
    CREATE TABLE task_events (LIKE task_events_0 INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                              PRIMARY KEY (cluster_id, task_id, id))
        PARTITION BY RANGE (task_id);
    ALTER TABLE task_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
    PERFORM setval(pg_get_serial_sequence('task_events', 'id'), events_next, false);
    EXECUTE format('ALTER TABLE task_events ATTACH PARTITION task_events_0 FOR VALUES FROM (MINVALUE) TO (%s)', first_free);
    -- The primary key above made (cluster_id, task_id, id) unique on the old events; their old index on
    -- the same columns says nothing more.
    DROP INDEX task_events_task_idx;

    -- task_participants: its key already starts with the task.
    ALTER TABLE task_participants RENAME TO task_participants_0;
    ALTER INDEX task_participants_pkey RENAME TO task_participants_0_pkey;
    CREATE TABLE task_participants (LIKE task_participants_0 INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                                    PRIMARY KEY (cluster_id, task_id, attempt, node))
        PARTITION BY RANGE (task_id);
    EXECUTE format('ALTER TABLE task_participants ATTACH PARTITION task_participants_0 FOR VALUES FROM (MINVALUE) TO (%s)', first_free);

    INSERT INTO history_partitions (lower_id, upper_id, ids_at_creation)
    VALUES (-9223372036854775808, first_free, first_free - 1);
END $$;

CREATE TABLE tasks_finished_overflow PARTITION OF tasks_finished DEFAULT;
CREATE TABLE task_events_overflow PARTITION OF task_events DEFAULT;
CREATE TABLE task_participants_overflow PARTITION OF task_participants DEFAULT;

-- Makes the range [lower_id, upper_id) in all three tables. Bounds are integers, never input.
CREATE FUNCTION taskyard_add_history_partition(lower_id bigint, upper_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    -- Full pages, and autovacuum that keeps up with a table that only grows until it is dropped.
    storage constant text := 'WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05)';
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF tasks_finished FOR VALUES FROM (%s) TO (%s) %s',
                   'tasks_finished_' || lower_id, lower_id, upper_id, storage);
    EXECUTE format('CREATE TABLE %I PARTITION OF task_events FOR VALUES FROM (%s) TO (%s) %s',
                   'task_events_' || lower_id, lower_id, upper_id, storage);
    EXECUTE format('CREATE TABLE %I PARTITION OF task_participants FOR VALUES FROM (%s) TO (%s) %s',
                   'task_participants_' || lower_id, lower_id, upper_id, storage);
    INSERT INTO history_partitions (lower_id, upper_id, ids_at_creation)
    VALUES (lower_id, upper_id, (SELECT last_value FROM tasks_id_seq));
END $$;

-- Makes ranges until the ids `ranges_ahead` ranges (and at least `min_room` ids) past the sequence's
-- position have one. Each new range spans the ids used during the last `period` (at least `min_span`),
-- measured since the newest range was made. A new range starts above everything in the overflow
-- partitions. Returns the ranges made.
CREATE FUNCTION taskyard_extend_history(period interval, min_span bigint, ranges_ahead integer, min_room bigint)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    position bigint := (SELECT last_value FROM tasks_id_seq);
    newest history_partitions;
    span bigint;
    lower_id bigint;
    made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('taskyard_extend_history'));
    SELECT * INTO newest FROM history_partitions h ORDER BY h.lower_id DESC LIMIT 1;
    span := greatest(min_span,
                     ceil((position - newest.ids_at_creation)
                          * extract(epoch FROM period)
                          / greatest(extract(epoch FROM now() - newest.created_at), extract(epoch FROM period)))::bigint);
    lower_id := greatest(newest.upper_id,
                         (SELECT coalesce(max(id), 0) + 1 FROM tasks_finished_overflow),
                         (SELECT coalesce(max(task_id), 0) + 1 FROM task_events_overflow),
                         (SELECT coalesce(max(task_id), 0) + 1 FROM task_participants_overflow));
    WHILE lower_id < position + greatest(ranges_ahead * span, min_room) LOOP
        PERFORM taskyard_add_history_partition(lower_id, lower_id + span);
        lower_id := lower_id + span;
        made := made + 1;
    END LOOP;
    RETURN made;
END $$;

-- Whether the range [lower_id, upper_id) must stay: one of its tasks is live, one of its roots finished at or
-- after `cutoff`, or a live task descends from one of them.
CREATE FUNCTION taskyard_history_range_must_stay(lower_id bigint, upper_id bigint, cutoff timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM tasks_live WHERE id < upper_id)
        OR coalesce((SELECT max(finished_at) FROM tasks_finished
                      WHERE id >= lower_id AND id < upper_id AND parent_id IS NULL) >= cutoff, false)
        OR EXISTS (WITH RECURSIVE ancestors(cluster_id, id) AS (
                       SELECT cluster_id, parent_id FROM tasks_live WHERE parent_id IS NOT NULL
                       UNION
                       SELECT t.cluster_id, t.parent_id FROM tasks t
                         JOIN ancestors a ON t.cluster_id = a.cluster_id AND t.id = a.id
                        WHERE t.parent_id IS NOT NULL)
                   SELECT 1 FROM ancestors WHERE id < upper_id)
$$;

-- Drops the oldest range when everything in it may go: every id of it has been handed out, none of its
-- tasks is live, its root tasks all finished before `cutoff`, and no live task descends from them. Their
-- trees' later members (in later ranges) go with them, row by row, as retention always removed whole trees.
-- Returns the lower bound of the range dropped, or NULL when the oldest range must stay.
CREATE FUNCTION taskyard_retire_history_partition(cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    oldest history_partitions;
    position bigint := (SELECT last_value FROM tasks_id_seq);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('taskyard_extend_history'));
    SELECT * INTO oldest FROM history_partitions h ORDER BY h.lower_id LIMIT 1;
    IF oldest IS NULL OR oldest.upper_id > position + 1 THEN
        RETURN NULL;
    END IF;
    -- Looked at first without locks (almost always the range must stay, and that costs the hot path
    -- nothing), then again under the locks a drop needs.
    IF taskyard_history_range_must_stay(oldest.lower_id, oldest.upper_id, cutoff) THEN
        RETURN NULL;
    END IF;
    -- Dropping a partition takes its parent's ACCESS EXCLUSIVE lock. Taken first, for the three parents,
    -- so that no lock is ever upgraded halfway (a deadlock with the hot path); and only briefly
    -- waited for, so that the hot path never queues long behind the request: when it is not to be had
    -- at once, the range waits for the next run. Everything else it writes takes ROW EXCLUSIVE, as the
    -- hot path does: no conflict.
    PERFORM set_config('lock_timeout', '100ms', true);
    BEGIN
        -- The parents only: every statement passes through them, so holding them holds everything, and
        -- locking every partition in turn could wait 100 ms at each while holding the ones before.
        LOCK TABLE ONLY tasks_finished, ONLY task_events, ONLY task_participants IN ACCESS EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;
    END;
    IF taskyard_history_range_must_stay(oldest.lower_id, oldest.upper_id, cutoff) THEN
        RETURN NULL;
    END IF;
    WITH RECURSIVE later_members AS (
        SELECT c.cluster_id, c.id FROM clusters k
          JOIN tasks_finished c ON c.cluster_id = k.id
         WHERE c.parent_id >= oldest.lower_id AND c.parent_id < oldest.upper_id AND c.id >= oldest.upper_id
        UNION ALL
        SELECT c.cluster_id, c.id FROM tasks c
          JOIN later_members m ON c.cluster_id = m.cluster_id AND c.parent_id = m.id
    ), events AS (
        DELETE FROM task_events e USING later_members m WHERE e.cluster_id = m.cluster_id AND e.task_id = m.id
    ), outcomes AS (
        DELETE FROM task_participants p USING later_members m WHERE p.cluster_id = m.cluster_id AND p.task_id = m.id
    ), keys AS (
        DELETE FROM task_idempotency_keys k USING later_members m WHERE k.cluster_id = m.cluster_id AND k.task_id = m.id
    )
    DELETE FROM tasks t USING later_members m WHERE t.cluster_id = m.cluster_id AND t.id = m.id;
    DELETE FROM task_idempotency_keys WHERE task_id >= oldest.lower_id AND task_id < oldest.upper_id;
    PERFORM taskyard_drop_history_partition(oldest.lower_id);
    RETURN oldest.lower_id;
END $$;

CREATE INDEX task_idempotency_keys_task_idx ON task_idempotency_keys (task_id);

-- Drops the range that starts at `lower_id` from all three tables.
CREATE FUNCTION taskyard_drop_history_partition(lower_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    suffix text := CASE WHEN lower_id = -9223372036854775808 THEN '0' ELSE lower_id::text END;
BEGIN
    EXECUTE format('DROP TABLE %I, %I, %I', 'tasks_finished_' || suffix, 'task_events_' || suffix,
                   'task_participants_' || suffix);
    DELETE FROM history_partitions h WHERE h.lower_id = taskyard_drop_history_partition.lower_id;
END $$;

SELECT taskyard_extend_history(interval '1 day', 100000, 2, 0);
