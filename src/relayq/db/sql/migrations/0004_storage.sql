-- Storage tuning for millions of messages (docs/scaling.md explains every number).
--
-- A message row is inserted, updated two or three times (dequeue, ack or nack) and finally
-- deleted by retention, so the message tables churn far faster than the default autovacuum
-- trigger (20% of the table dead) notices: with a million acknowledged rows of history that
-- is 200,000 dead rows before the first vacuum, and the dequeue index fills with pointers
-- to dead versions. Vacuum these tables after 1% (+1,000 rows) instead, with ten times the
-- default cost budget so one pass finishes before the next batch of garbage arrives, and
-- vacuum insert-mostly phases too (so index-only visibility and freezing keep up).
-- fillfactor 80 leaves room on each page for the new versions of the same messages, so an
-- update usually stays on its page and space freed by vacuum is reused in place.
ALTER TABLE relay.messages SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);
-- LIKE ... INCLUDING ALL copied no storage parameters: give the unlogged table the same ones.
ALTER TABLE relay.messages_unlogged SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);
-- (Partitioned parents take no storage parameters; each time partition gets these options
-- when it is created: services/queues.py PARTITION_STORAGE.)

-- The counters are a few hundred rows updated by every statement. Half-empty pages let each
-- update be a HOT update on the same page, which page pruning cleans without a vacuum.
ALTER TABLE relay.message_counts SET (fillfactor = 50, autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_scale_factor = 0);
ALTER TABLE relay.message_counts_unlogged SET (fillfactor = 50, autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_scale_factor = 0);

-- GET /queue/status lists acknowledged messages newest-acknowledged first. Without this index
-- that is a sort of every acknowledged row (a million rows of history: about a second).
CREATE INDEX messages_acknowledged_idx ON relay.messages (acknowledged_at DESC NULLS LAST)
    WHERE status = 'acknowledged';
CREATE INDEX messages_unlogged_acknowledged_idx ON relay.messages_unlogged (acknowledged_at DESC NULLS LAST)
    WHERE status = 'acknowledged';
CREATE INDEX messages_partitioned_acknowledged_idx
    ON relay.messages_partitioned (acknowledged_at DESC NULLS LAST) WHERE status = 'acknowledged';
