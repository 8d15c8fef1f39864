-- A change feed that resumes (issue 25): every event row names the transaction that wrote it.
--
-- Event ids are taken in one order and committed in another: a consumer that resumed after the highest id
-- it saw would miss a change whose transaction took a lower id and committed later. The feed orders by
-- (transaction, event id) instead and hands out only the changes of transactions older than every one still
-- running (`pg_snapshot_xmin`): one that commits later has a higher transaction id than every position handed
-- out before, so it sorts after them. Rows written before this migration have none and are not in the feed.
ALTER TABLE task_events ADD COLUMN xid xid8;
ALTER TABLE task_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX task_events_feed_idx ON task_events (cluster_id, xid, id);
