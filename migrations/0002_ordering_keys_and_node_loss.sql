-- Ordering keys: a claim looks for an earlier live task with the same key; live tasks only, so the
-- check costs the same whatever the history.
CREATE INDEX tasks_ordering_key_idx ON tasks (cluster_id, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('queued', 'received');

-- Node loss: queued tasks by their assigned node, to move them when it goes offline (also the claim's
-- leading columns, but without the priority order).
CREATE INDEX nodes_last_seen_idx ON nodes (last_seen_at) WHERE status = 'online';
