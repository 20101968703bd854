-- messages_status_idx leaves queued messages out: messages_dequeue_idx holds them already.
-- With both indexes able to find a queue's queued messages, the planner sometimes read this one
-- and sorted (cheap while a queue is nearly empty, a sort of the whole backlog on every dequeue
-- when a backlog builds faster than statistics follow), and then this index, never scanned by
-- the dequeue, kept every dead entry until the next vacuum and grew with them
-- (docs/scaling.md, Bounded storage). Without queued rows it also costs one index write less
-- per enqueued message. Statements that find a queue's messages whatever their status say
-- `(status = 'queued' OR status <> 'queued')`, which the planner answers from both partial
-- indexes (a BitmapOr), in custom and generic plans alike (db/queries.py ANY_STATUS).
-- Rebuilding takes a SHARE lock on each message table (enqueue, dequeue and ack wait) for as
-- long as the build of one index takes: seconds per million messages.
DROP INDEX relay.messages_status_idx;
CREATE INDEX messages_status_idx ON relay.messages (queue_name, status, created_at)
    WHERE status <> 'queued';
DROP INDEX relay.messages_unlogged_queue_name_status_created_at_idx;
CREATE INDEX messages_unlogged_queue_name_status_created_at_idx
    ON relay.messages_unlogged (queue_name, status, created_at) WHERE status <> 'queued';
DROP INDEX relay.messages_partitioned_status_idx;
CREATE INDEX messages_partitioned_status_idx
    ON relay.messages_partitioned (queue_name, status, created_at) WHERE status <> 'queued';
