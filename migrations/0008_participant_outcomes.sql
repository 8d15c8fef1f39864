-- A participant's outcome row records what one node did for one attempt of its parent: a record, not a
-- task. Retry, cancel and delete refuse it, and it keeps no copy of the payload (its parent holds it).
-- Rows written before this migration are not marked (finding them would read every task).
ALTER TABLE tasks ADD COLUMN outcome boolean NOT NULL DEFAULT false;
