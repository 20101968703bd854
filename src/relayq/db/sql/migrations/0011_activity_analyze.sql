-- ANALYZE of the activity log holds a snapshot, and while it does no dead index entry anywhere
-- in the database can be removed: the dequeue index (one page of queued rows at 300 messages/s)
-- then fills with the entries of messages dequeued meanwhile and splits, for good. With the
-- default statistics target ANALYZE samples 30,000 rows of a table that only grows (150-200 ms
-- idle, measured; under autovacuum's cost-based sleeps much longer). The log's columns need
-- coarse statistics only (its reads go by index: newest first, per message, anomalies), so a
-- target of 10 samples 3,000 rows (13-15 ms), and the same cost limit as the message tables keeps
-- autovacuum's sleeps short.
ALTER TABLE relay.activity_log
    ALTER COLUMN log_id SET STATISTICS 10, ALTER COLUMN ts SET STATISTICS 10,
    ALTER COLUMN action SET STATISTICS 10, ALTER COLUMN message_id SET STATISTICS 10,
    ALTER COLUMN queue SET STATISTICS 10, ALTER COLUMN consumer_id SET STATISTICS 10,
    ALTER COLUMN anomaly_type SET STATISTICS 10, ALTER COLUMN anomaly_severity SET STATISTICS 10,
    ALTER COLUMN entry SET STATISTICS 10;
ALTER TABLE relay.activity_log SET (autovacuum_vacuum_cost_limit = 2000);
