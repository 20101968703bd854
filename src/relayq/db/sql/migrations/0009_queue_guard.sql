-- Enqueue statements guard their queue against a concurrent delete or rename with a shared
-- advisory lock instead of FOR KEY SHARE on the queue's row. A row lock is written into
-- the row (a heap write and a WAL record per statement) and, whenever two statements hold it at
-- once, which natural batching makes the rule, into a new MultiXact: together about 15% of
-- batch-enqueue throughput, measured. An advisory lock lives in shared memory only.
-- Queue delete and rename take the same lock exclusively (services/queues.py _lock_queue).
-- The check that the queue still exists runs after the lock is granted, in a query of this
-- VOLATILE function, which gets a fresh snapshot: an enqueue that waited for a delete to commit
-- sees the queue gone (the calling statement's own snapshot, taken before, would not).
-- The lock's first key is constant (0x72656C71, "relq"); the second is the queue id folded into
-- an int, as for maintenance's locks.
CREATE FUNCTION relay.queue_open(qid bigint, qname text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1919249521, (qid % 2147483647)::int);
    RETURN EXISTS (SELECT 1 FROM relay.queues q WHERE q.id = qid AND q.name = qname);
END
$$;
