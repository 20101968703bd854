-- The message tables keep the size they reach instead of handing their empty tail back to the
-- operating system (docs/scaling.md, Bounded storage). Maintenance vacuums them after every
-- retention pass and the space it frees is refilled within seconds, so truncating the tail buys
-- nothing for long, and it takes an ACCESS EXCLUSIVE lock on the busiest table of the database:
-- for as long as vacuum holds it every dequeue and ack of every queue in the table waits, and on
-- a hot standby its replay cancels the queries reading the table. After a one-off backlog the
-- file keeps its size, its space reused by later messages; `VACUUM (TRUNCATE)` at a quiet moment
-- returns it. (Time partitions get the same option: services/queues.py PARTITION_STORAGE.)
ALTER TABLE relay.messages SET (vacuum_truncate = false);
ALTER TABLE relay.messages_unlogged SET (vacuum_truncate = false);
