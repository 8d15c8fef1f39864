-- Range drops take their locks first and wait for them only briefly (see the function): the first version
-- took them as it went, and a drop racing a submit could deadlock with it (a 503 for the submit).
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
CREATE OR REPLACE FUNCTION taskyard_retire_history_partition(cutoff timestamptz) RETURNS bigint
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

REVOKE EXECUTE ON FUNCTION taskyard_history_range_must_stay(bigint, bigint, timestamptz) FROM PUBLIC;
