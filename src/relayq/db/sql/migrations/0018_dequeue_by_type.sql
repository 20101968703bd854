-- The dequeue index ends with the message type, so a dequeue with `type=` checks each queued
-- message's type in the index instead of fetching its row: behind 1,000,000 queued messages of
-- other types, a claim for a rare or absent type took 370 ms (the planner chose to scan the whole
-- table) and now takes 55 ms; claims without a type, and for common types, are unchanged, and so
-- is the order the index gives. A batch enqueue measured no slower; the index is ~23 % larger.
-- The claim for a type is its own statement (queries.py), so a generic plan keeps `type = $6`
-- as an index condition.
-- Rebuilding the three indexes locks each message table until the migration commits (about 1.5 s
-- per 1,000,000 queued messages, measured beside 1,000,000 acknowledged ones).
DROP INDEX relay.messages_dequeue_idx;
CREATE INDEX messages_dequeue_idx ON relay.messages (queue_name, delayed, priority DESC, created_at, seq, type)
    WHERE status = 'queued';
DROP INDEX relay.messages_unlogged_dequeue_idx;
CREATE INDEX messages_unlogged_dequeue_idx
    ON relay.messages_unlogged (queue_name, delayed, priority DESC, created_at, seq, type) WHERE status = 'queued';
DROP INDEX relay.messages_partitioned_dequeue_idx;
CREATE INDEX messages_partitioned_dequeue_idx
    ON relay.messages_partitioned (queue_name, delayed, priority DESC, created_at, seq, type) WHERE status = 'queued';
