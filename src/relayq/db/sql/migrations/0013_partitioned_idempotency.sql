-- Idempotency keys of partitioned queues: time partitions cannot hold a unique index across a
-- queue, and an existence check in the enqueue statement misses a concurrent statement's insert
-- of the same key (its snapshot predates that commit): measured, 20 concurrent enqueues of one
-- key stored two messages in 4 runs of 10. A keyed insert now first takes a transaction advisory
-- lock on (queue, key), then looks in a query of this VOLATILE function, which gets a fresh
-- snapshot: a statement that waited for another's commit sees its row. The lock's first key is
-- constant (0x69646B79, "idky"); the second is a hash of queue and key ('/' cannot be in a
-- queue name). Keys repeated within one statement are sent once (services/messages.py).
CREATE FUNCTION relay.idempotency_key_free(qname text, ikey text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1768188793, hashtext(qname || '/' || ikey));
    RETURN NOT EXISTS (SELECT 1 FROM relay.messages_partitioned e
                       WHERE e.queue_name = qname AND e.idempotency_key = ikey);
END
$$;
