-- Slots given back are counted apart from the slots taken (issue 24).
--
-- A report, a lease expiry or a released claim gave its slots back by updating the slot rows a claim
-- takes them on: the report then waited for every claim holding one of its nodes' rows through that
-- claim's commit (its WAL flush), and the claims for the reports. One POST per task fell by a tenth,
-- polls took 4× and reports 2× as long. Now whatever leaves `received` only inserts what it gives back
-- here (no row of anyone else's is locked); a claim, holding a slot row's lock, folds that slot's returns
-- into the row as it takes its slots. The slots in use are the row's count less its returns not yet
-- folded: `admission_slot_counts`.
CREATE TABLE admission_returns (
    cluster_id text    NOT NULL,
    kind       text    NOT NULL,
    name       text    NOT NULL,
    n          integer NOT NULL CHECK (n > 0)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000);
CREATE INDEX admission_returns_slot_idx ON admission_returns (cluster_id, kind, name);

COMMENT ON COLUMN admission_slots.used IS
    'Slots taken, less the returns folded in so far: the slots in use are admission_slot_counts.used';

-- The slots in use per node and per key: read by whoever looks at them (claims decide on it unlocked).
CREATE VIEW admission_slot_counts AS
SELECT s.cluster_id, s.kind, s.name,
       (s.used - coalesce((SELECT sum(r.n) FROM admission_returns r
                            WHERE r.cluster_id = s.cluster_id AND r.kind = s.kind AND r.name = s.name), 0))::integer AS used
  FROM admission_slots s;
