-- Retention: finished root tasks by the time they finished, so that pruning reads only what it deletes.
CREATE INDEX tasks_finished_roots_idx ON tasks (finished_at) WHERE parent_id IS NULL AND finished_at IS NOT NULL;
