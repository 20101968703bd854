-- Drop the plain created_at indexes of the message tables. Every status change is a non-HOT
-- update that adds an entry to every index of the table; this one only served the admin
-- by-time endpoints (GET/DELETE /queue/messages), which can scan. One index less per update is
-- less write work on the hot path and less index bloat under sustained load (docs/scaling.md).
DROP INDEX relay.messages_created_idx;
DROP INDEX relay.messages_unlogged_created_at_idx;
DROP INDEX relay.messages_partitioned_created_idx;
