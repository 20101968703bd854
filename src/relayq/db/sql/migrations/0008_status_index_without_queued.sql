-- messages_status_idx keeps finished messages only (acknowledged, dead, archived): queued ones
-- are in messages_dequeue_idx, leased ones in messages_lease_idx already.
-- * With queued rows in both indexes the planner sometimes read this one for a dequeue and
--   sorted (cheap while a queue is nearly empty, a sort of the whole backlog on every dequeue
--   when a backlog builds faster than statistics follow); this index, never scanned by the
--   dequeue, then kept every dead entry until the next vacuum and grew with them.
-- * A message used to add three entries here (enqueue, dequeue, ack), two of them dead within
--   seconds, in the middle of the key range where vacuum is the only cleaner; now it adds one,
--   at the end of its queue's range, removed by retention from the start of the range: pages
--   empty in order and are reused (docs/scaling.md, Bounded storage).
-- Statements that find a queue's messages whatever their status name the three groups, which
-- the planner answers from the three partial indexes (a BitmapOr), in custom and generic plans
-- alike (db/queries.py ANY_STATUS).
-- Rebuilding takes a SHARE lock on each message table (enqueue, dequeue and ack wait) for as
-- long as the build of one index takes: seconds per million messages.
DROP INDEX relay.messages_status_idx;
CREATE INDEX messages_status_idx ON relay.messages (queue_name, status, created_at)
    WHERE status NOT IN ('queued', 'processing');
DROP INDEX relay.messages_unlogged_queue_name_status_created_at_idx;
CREATE INDEX messages_unlogged_queue_name_status_created_at_idx
    ON relay.messages_unlogged (queue_name, status, created_at) WHERE status NOT IN ('queued', 'processing');
DROP INDEX relay.messages_partitioned_status_idx;
CREATE INDEX messages_partitioned_status_idx
    ON relay.messages_partitioned (queue_name, status, created_at) WHERE status NOT IN ('queued', 'processing');
