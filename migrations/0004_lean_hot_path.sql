-- The hot path, leaner. Events are written only by the statements that make the transitions, in the same
-- statement as the task's own row, so their foreign key to tasks checked what cannot go wrong, at the
-- cost of one index probe and row lock per event: four per task with one participant (submit, claim,
-- report, the participant's child). Deleting a task (`DELETE …/tasks/{id}`, retention, prune) deletes
-- its events in the same statement instead of by cascade.
ALTER TABLE task_events DROP CONSTRAINT task_events_cluster_id_task_id_fkey;
