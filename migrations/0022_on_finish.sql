-- A follow-up task when a task finishes (issue 25, item 4): `"on_finish": {"type", "node"}` submits a task of
-- that type on that node in the transaction that finishes the first — whichever statement finishes it (a
-- report, a cancel, a lease running out, the node monitor, a refusal at a key's limit) — with what it ended
-- with in its payload. So "write the volume's row when the create completes" is one request, not a poller,
-- and a crash cannot finish the one without submitting the other.
ALTER TABLE tasks ADD COLUMN on_finish_type text CHECK (on_finish_type ~ '^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$');
ALTER TABLE tasks ADD COLUMN on_finish_node text;
-- The follow-up submitted when it last finished.
ALTER TABLE tasks ADD COLUMN follow_up_id bigint;
ALTER TABLE tasks ADD CHECK ((on_finish_type IS NULL) = (on_finish_node IS NULL));

-- A row reaches `tasks_finished` exactly when its task finishes (a finishing update moves it there from
-- `tasks_live`; a task refused as it arrives is inserted there): the one place every way of finishing meets.
-- Tasks without a follow-up never call it (the trigger's WHEN). It notifies the follow-up's node, as the
-- store's signals would (the store cannot see a row a trigger writes); a retried task that finishes again
-- submits another.
CREATE FUNCTION taskyard_submit_follow_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tasks (cluster_id, type, payload, assigned_node, participating_nodes, traceparent)
    VALUES (NEW.cluster_id, NEW.on_finish_type,
            jsonb_build_object('task_id', NEW.id, 'type', NEW.type, 'state', NEW.state, 'result', NEW.result,
                               'error', NEW.error, 'payload', NEW.payload),
            NEW.on_finish_node, ARRAY[NEW.on_finish_node], NEW.traceparent)
    RETURNING id INTO NEW.follow_up_id;
    INSERT INTO task_events (cluster_id, task_id, from_state, to_state, node, attempt, detail)
    VALUES (NEW.cluster_id, NEW.follow_up_id, NULL, 'queued', NEW.on_finish_node, 0,
            jsonb_build_object('follow_up_of', NEW.id));
    PERFORM pg_notify('taskyard_node_work', NEW.cluster_id || ' ' || NEW.on_finish_node);
    RETURN NEW;
END $$;

CREATE TRIGGER tasks_submit_follow_up BEFORE INSERT ON tasks_finished
    FOR EACH ROW WHEN (NEW.on_finish_type IS NOT NULL) EXECUTE FUNCTION taskyard_submit_follow_up();
