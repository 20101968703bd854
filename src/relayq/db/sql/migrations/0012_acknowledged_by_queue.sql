-- An acknowledged message was in two indexes that both grow with time, and the ack wrote both:
-- messages_status_idx (queue_name, status, created_at) and messages_acknowledged_idx
-- (acknowledged_at). The acknowledged index now leads with the queue, so it serves what the
-- status index did for acknowledged messages (retention oldest first, the per-queue list, a
-- queue's messages for delete, purge and rename), and the status index keeps dead and archived
-- messages only: an ack writes one index entry less, and the indexes of a busy table hold about
-- a third fewer pages (docs/scaling.md, Bounded storage).
-- Retention therefore counts an acknowledged message's age from its acknowledgement (archived
-- messages still from their creation, as time partitions do).
-- Rebuilding takes a SHARE lock on each message table (enqueue, dequeue and ack wait) for as
-- long as the build of one index takes: seconds per million messages.
DROP INDEX relay.messages_acknowledged_idx;
CREATE INDEX messages_acknowledged_idx ON relay.messages (queue_name, acknowledged_at NULLS FIRST)
    WHERE status = 'acknowledged';
DROP INDEX relay.messages_unlogged_acknowledged_idx;
CREATE INDEX messages_unlogged_acknowledged_idx
    ON relay.messages_unlogged (queue_name, acknowledged_at NULLS FIRST) WHERE status = 'acknowledged';
DROP INDEX relay.messages_partitioned_acknowledged_idx;
CREATE INDEX messages_partitioned_acknowledged_idx
    ON relay.messages_partitioned (queue_name, acknowledged_at NULLS FIRST) WHERE status = 'acknowledged';
DROP INDEX relay.messages_status_idx;
CREATE INDEX messages_status_idx ON relay.messages (queue_name, status, created_at)
    WHERE status NOT IN ('queued', 'processing', 'acknowledged');
DROP INDEX relay.messages_unlogged_queue_name_status_created_at_idx;
CREATE INDEX messages_unlogged_queue_name_status_created_at_idx ON relay.messages_unlogged
    (queue_name, status, created_at) WHERE status NOT IN ('queued', 'processing', 'acknowledged');
DROP INDEX relay.messages_partitioned_status_idx;
CREATE INDEX messages_partitioned_status_idx ON relay.messages_partitioned
    (queue_name, status, created_at) WHERE status NOT IN ('queued', 'processing', 'acknowledged');
