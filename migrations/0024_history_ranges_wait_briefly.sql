-- Making history ranges waits briefly for its locks, as dropping them does (0013's retire function).
--
-- `CREATE TABLE … PARTITION OF` takes its parent's ACCESS EXCLUSIVE lock, for tasks_finished, then
-- task_events, then task_participants. A batch submit holds task_events (its inserted events) and then reads
-- tasks_finished (the tasks its idempotency keys already name): the two deadlocked — PostgreSQL ended the
-- submit (40P01, a 503 to the client), seen when a fresh leader made its first ranges while a test submitted.
-- Now the three parents are locked first, each waited for at most 100 ms; when one is not to be had the
-- ranges wait for the next run (the overflow partitions take rows meanwhile), and a submit never waits long
-- behind it.
CREATE OR REPLACE FUNCTION taskyard_extend_history(period interval, min_span bigint, ranges_ahead integer, min_room bigint)
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
    IF lower_id >= position + greatest(ranges_ahead * span, min_room) THEN
        RETURN 0;
    END IF;
    PERFORM set_config('lock_timeout', '100ms', true);
    BEGIN
        LOCK TABLE ONLY tasks_finished, ONLY task_events, ONLY task_participants IN ACCESS EXCLUSIVE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    WHILE lower_id < position + greatest(ranges_ahead * span, min_room) LOOP
        PERFORM taskyard_add_history_partition(lower_id, lower_id + span);
        lower_id := lower_id + span;
        made := made + 1;
    END LOOP;
    RETURN made;
END $$;
