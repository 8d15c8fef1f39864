-- Storage settings for a table that is a queue and a history at once: most rows are finished and never
-- change again, while the live ones are updated two or three times within seconds.
-- * fillfactor 90: room on each page for the new version of a row being claimed or reported.
-- * Vacuum after 2% of the rows are dead (default 20%: two million dead rows at ten million), so that the
--   queue's partial indexes stay small; analyze after 2% change, so that plans follow the table's growth
--   (the server's statistics keeper covers the first minutes, before autovacuum looks at all).
-- Measured with `taskyard bench` on the development machine, two databases side by side, four rounds of
-- 30,000 tasks each: raw claim + complete 12,502 and 11,739 tasks/s against 12,163 and 10,653 with the
-- defaults, end to end 5,173 and 4,806 against 5,035 and 4,672: the defaults fall behind as the table grows.
ALTER TABLE tasks SET (fillfactor = 90,
                       autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
                       autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05);
ALTER TABLE task_events SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05);
