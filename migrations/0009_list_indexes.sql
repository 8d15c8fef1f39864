-- Lists that cost what they return: every filter of GET …/tasks reads an index that starts where its answer
-- does and is ordered as the page is read (created_at, then id: oldest first), so a page is a short walk
-- from the cursor whatever the history holds. Before, `since` walked the primary key from the cluster's
-- first task and `state`/`type` filters scanned the table.
DROP INDEX tasks_created_idx;
CREATE INDEX tasks_created_idx ON tasks (cluster_id, created_at, id);
-- States other than completed are rare in a long history (and queued/received rows leave it as they finish):
-- completed rows are not in it, so completing a task writes nothing here.
CREATE INDEX tasks_listed_state_idx ON tasks (cluster_id, state, created_at, id) WHERE state <> 'completed';
CREATE INDEX tasks_type_idx ON tasks (cluster_id, type, created_at, id);
CREATE INDEX tasks_node_idx ON tasks (cluster_id, assigned_node, created_at, id);
DROP INDEX tasks_parent_idx;
CREATE INDEX tasks_parent_idx ON tasks (cluster_id, parent_id, created_at, id) WHERE parent_id IS NOT NULL;
DROP INDEX tasks_opaque_id_idx;
CREATE INDEX tasks_opaque_id_idx ON tasks (cluster_id, opaque_id, created_at, id) WHERE opaque_id IS NOT NULL;
