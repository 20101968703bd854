-- Messages that are queued but not yet due (a delayed enqueue, a nack's or the reaper's backoff)
-- get a key range of their own in the dequeue index. They used to sit among the others in
-- created_at order, so every dequeue of their queue walked past all of them, reading each row
-- from the heap to find available_at in the future: 100,000 delayed messages made a dequeue 15
-- times slower (a batch of reminders, or a backlog nacked with backoff during an outage).
-- `delayed` is true while a queued message waits for its available_at; a background loop clears
-- it once due (services/delays.py, queries.sql `promote`), through an index of the waiting
-- messages by due time. Queued messages, delayed or not, stay in the dequeue index, so the
-- queue-wide statements find them there as before.
-- The new column has a constant default, so adding it rewrites nothing, but ALTER TABLE locks
-- each message table (reads too) until the migration commits, after the flagging and the index
-- builds: 5 s with 2,000,000 messages (1,000,000 queued) on the machine of docs/scaling.md.
-- Servers of an older version still running afterwards claim with an ORDER BY that no longer
-- matches the dequeue index (a sort of the backlog per claim): stop them first.
ALTER TABLE relay.messages ADD COLUMN delayed boolean NOT NULL DEFAULT false;
ALTER TABLE relay.messages_unlogged ADD COLUMN delayed boolean NOT NULL DEFAULT false;
ALTER TABLE relay.messages_partitioned ADD COLUMN delayed boolean NOT NULL DEFAULT false;
UPDATE relay.messages SET delayed = true WHERE status = 'queued' AND available_at > now();
UPDATE relay.messages_unlogged SET delayed = true WHERE status = 'queued' AND available_at > now();
UPDATE relay.messages_partitioned SET delayed = true WHERE status = 'queued' AND available_at > now();

DROP INDEX relay.messages_dequeue_idx;
CREATE INDEX messages_dequeue_idx ON relay.messages (queue_name, delayed, priority DESC, created_at, seq)
    WHERE status = 'queued';
DROP INDEX relay.messages_unlogged_queue_name_priority_created_at_seq_idx;
CREATE INDEX messages_unlogged_dequeue_idx
    ON relay.messages_unlogged (queue_name, delayed, priority DESC, created_at, seq) WHERE status = 'queued';
DROP INDEX relay.messages_partitioned_dequeue_idx;
CREATE INDEX messages_partitioned_dequeue_idx
    ON relay.messages_partitioned (queue_name, delayed, priority DESC, created_at, seq) WHERE status = 'queued';

CREATE INDEX messages_delayed_idx ON relay.messages (available_at) WHERE status = 'queued' AND delayed;
CREATE INDEX messages_unlogged_delayed_idx ON relay.messages_unlogged (available_at)
    WHERE status = 'queued' AND delayed;
CREATE INDEX messages_partitioned_delayed_idx ON relay.messages_partitioned (available_at)
    WHERE status = 'queued' AND delayed;
