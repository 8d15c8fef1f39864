-- Participant outcomes in a narrow table of their own: one row per participant and attempt, written with
-- the report in one multi-row insert. They were whole `tasks` rows (children of the task, born terminal),
-- each paying every index of `tasks` and a `task_events` row; a three-node task wrote four task rows.
-- One index (the key); no foreign key, so that `tasks` can be split into live and finished parts later:
-- the statements that delete tasks delete their participants (as they do their events).
CREATE TABLE task_participants (
    cluster_id  text        NOT NULL,
    task_id     bigint      NOT NULL,
    node        text        NOT NULL,
    attempt     integer     NOT NULL CHECK (attempt >= 1),
    state       text        NOT NULL CHECK (state IN ('completed', 'failed', 'cancelled')),
    result      jsonb,
    error       text,
    started_at  timestamptz,
    finished_at timestamptz NOT NULL,
    -- {"state": "completed"|"failed", "result"?, "error"?}: the rollback that undid this success.
    rollback    jsonb       CHECK (rollback IS NULL OR jsonb_typeof(rollback) = 'object'),
    -- This outcome settled the task under its completion policy.
    decided     boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (cluster_id, task_id, attempt, node)
);
ALTER TABLE task_participants SET (autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02);

-- The outcome rows move: marked ones (migration 0008 on), and older ones, told by being born terminal (a
-- task a client submitted is born queued). A rollback was kept inside the result as
-- {"result": …, "rollback": {…}}; it gets its own column.
CREATE TEMPORARY TABLE moved_outcomes ON COMMIT DROP AS
    SELECT t.cluster_id, t.id, t.parent_id, t.assigned_node, t.attempt, t.state, t.result, t.error,
           t.received_at, t.finished_at
      FROM tasks t
     WHERE t.parent_id IS NOT NULL
       AND (t.outcome OR EXISTS (SELECT 1 FROM task_events e
                                  WHERE e.cluster_id = t.cluster_id AND e.task_id = t.id
                                    AND e.from_state IS NULL AND e.to_state <> 'queued'));

INSERT INTO task_participants (cluster_id, task_id, node, attempt, state, result, error, started_at,
                               finished_at, rollback)
SELECT cluster_id, parent_id, assigned_node, greatest(attempt, 1), state,
       CASE WHEN jsonb_typeof(result) = 'object' AND result ? 'rollback' AND result ? 'result'
            THEN result -> 'result' ELSE result END,
       error, received_at, coalesce(finished_at, now()),
       CASE WHEN jsonb_typeof(result) = 'object' AND result ? 'rollback' AND result ? 'result'
                 AND jsonb_typeof(result -> 'rollback') = 'object'
            THEN result -> 'rollback' END
  FROM moved_outcomes
ON CONFLICT DO NOTHING;

DELETE FROM task_events e USING moved_outcomes m WHERE e.cluster_id = m.cluster_id AND e.task_id = m.id;
DELETE FROM tasks t USING moved_outcomes m WHERE t.cluster_id = m.cluster_id AND t.id = m.id;
ALTER TABLE tasks DROP COLUMN outcome;
