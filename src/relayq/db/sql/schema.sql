-- The whole Relay schema as the newest migration leaves it. tests/integration/test_schema.py
-- proves that applying every migration in order produces exactly this.
-- Three message tables share one column layout: `messages` (durable), `messages_unlogged`
-- (UNLOGGED), `messages_partitioned` (LIST by queue id, then RANGE by created_at).
CREATE SCHEMA IF NOT EXISTS relay;

CREATE TABLE relay.queues (
    id                  bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    name                text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    queue_type          text NOT NULL DEFAULT 'standard'
                        CHECK (queue_type IN ('standard', 'unlogged', 'partitioned')),
    ack_timeout_seconds integer NOT NULL CHECK (ack_timeout_seconds > 0),
    max_attempts        integer NOT NULL CHECK (max_attempts > 0),
    retry_delay_seconds integer NOT NULL DEFAULT 0 CHECK (retry_delay_seconds >= 0),
    partition_interval  text CHECK (partition_interval IN ('hourly', 'daily', 'weekly')),
    retention_interval  text,
    description         text CHECK (length(description) <= 500),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE relay.messages (
    id                  text PRIMARY KEY,
    seq                 bigint GENERATED ALWAYS AS IDENTITY,
    queue_id            bigint NOT NULL,
    queue_name          text NOT NULL,
    type                text,
    payload             json,
    priority            smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'processing', 'acknowledged', 'dead', 'archived')),
    attempt_count       integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL,
    ack_timeout_seconds integer NOT NULL,
    lock_token          text,
    locked_until        timestamptz,
    consumer_id         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    available_at        timestamptz NOT NULL DEFAULT now(),
    dequeued_at         timestamptz,
    acknowledged_at     timestamptz,
    last_error          text,
    payload_size        integer NOT NULL DEFAULT 0,
    idempotency_key     text,
    -- Queued but not yet due (delayed, or backing off): a key range of its own in the dequeue
    -- index until services/delays.py clears it at available_at (migration 0015).
    delayed             boolean NOT NULL DEFAULT false
) WITH (fillfactor = 80);
-- Dequeue reads only this partial index, so its cost does not grow with finished messages, and
-- only its range of due messages (delayed = false), so not with messages waiting for their time.
-- The type comes last: a dequeue with `type=` checks it in the index, not in the row (0018).
CREATE INDEX messages_dequeue_idx ON relay.messages (queue_name, delayed, priority DESC, created_at, seq, type)
    WHERE status = 'queued';
CREATE INDEX messages_lease_idx ON relay.messages (locked_until) WHERE status = 'processing';
CREATE INDEX messages_status_idx ON relay.messages (queue_name, status, created_at)
    WHERE status NOT IN ('queued', 'processing', 'acknowledged');  -- dead and archived (0008, 0012)
CREATE INDEX messages_created_idx ON relay.messages (created_at);
CREATE UNIQUE INDEX messages_idempotency_idx ON relay.messages (queue_name, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE UNLOGGED TABLE relay.messages_unlogged (LIKE relay.messages INCLUDING ALL);
-- (LIKE names the copied dequeue index after its columns, cut to 63 characters.)
ALTER INDEX relay.messages_unlogged_queue_name_delayed_priority_created_at_se_idx RENAME TO messages_unlogged_dequeue_idx;
-- Delayed messages by due time, for `promote` (services/delays.py).
CREATE INDEX messages_delayed_idx ON relay.messages (available_at) WHERE status = 'queued' AND delayed;
CREATE INDEX messages_unlogged_delayed_idx ON relay.messages_unlogged (available_at)
    WHERE status = 'queued' AND delayed;

CREATE TABLE relay.messages_partitioned (
    LIKE relay.messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY,
    -- A partitioned table's keys must include the partition columns.
    PRIMARY KEY (queue_id, id, created_at)
) PARTITION BY LIST (queue_id);
CREATE INDEX messages_partitioned_dequeue_idx
    ON relay.messages_partitioned (queue_name, delayed, priority DESC, created_at, seq, type) WHERE status = 'queued';
CREATE INDEX messages_partitioned_delayed_idx ON relay.messages_partitioned (available_at)
    WHERE status = 'queued' AND delayed;
CREATE INDEX messages_partitioned_lease_idx
    ON relay.messages_partitioned (locked_until) WHERE status = 'processing';
CREATE INDEX messages_partitioned_status_idx
    ON relay.messages_partitioned (queue_name, status, created_at)
    WHERE status NOT IN ('queued', 'processing', 'acknowledged');
CREATE INDEX messages_partitioned_created_idx ON relay.messages_partitioned (created_at);
CREATE INDEX messages_partitioned_idempotency_idx
    ON relay.messages_partitioned (queue_name, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE relay.activity_log (
    log_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts                  timestamptz NOT NULL,
    action              text NOT NULL,
    message_id          text,
    queue               text,
    consumer_id         text,
    anomaly_type        text,
    anomaly_severity    text,
    entry               jsonb NOT NULL
);
-- Ascending, read backwards by the newest-first listings (migration 0010): new entries go to the
-- rightmost leaf, reached without a descent and split at the fillfactor instead of 50:50.
CREATE INDEX activity_log_ts_idx ON relay.activity_log (ts, log_id);
CREATE INDEX activity_log_message_idx ON relay.activity_log (message_id, ts, log_id);
-- A queue's entries newest first, without walking other queues' (migration 0016).
CREATE INDEX activity_log_queue_idx ON relay.activity_log (queue, ts, log_id);
CREATE INDEX activity_log_anomaly_idx ON relay.activity_log (ts) WHERE anomaly_type IS NOT NULL;

CREATE TABLE relay.consumer_stats (
    consumer_id         text NOT NULL,
    queue               text NOT NULL,
    dequeue_count       bigint NOT NULL DEFAULT 0,
    ack_count           bigint NOT NULL DEFAULT 0,
    fail_count          bigint NOT NULL DEFAULT 0,
    last_dequeue        timestamptz,
    last_ack            timestamptz,
    PRIMARY KEY (consumer_id, queue)
);
-- Incremental message counts per (queue, status, priority), kept by statement-level triggers
-- so /queues, /queue/metrics and /queue/status never count(*) over millions of rows.
-- Each statement adds its net deltas to one of 16 slots chosen by backend pid, so concurrent
-- writers rarely wait on the same counter row. Reads sum the slots.
CREATE TABLE relay.message_counts (
    queue_name   text NOT NULL,
    status       text NOT NULL,
    priority     smallint NOT NULL,
    slot         smallint NOT NULL,
    n            bigint NOT NULL DEFAULT 0,
    payload_sum  bigint NOT NULL DEFAULT 0,
    payload_max  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_name, status, priority, slot)
);
-- Counts of unlogged messages live in an unlogged table, so both vanish together after a crash.
CREATE UNLOGGED TABLE relay.message_counts_unlogged (LIKE relay.message_counts INCLUDING ALL);

-- Types ever stored per queue (GET /queue/status availableTypes), without scanning messages.
CREATE TABLE relay.message_types (
    queue_name   text NOT NULL,
    type         text NOT NULL,
    PRIMARY KEY (queue_name, type)
);

CREATE FUNCTION relay.count_messages() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target text := CASE WHEN TG_TABLE_NAME = 'messages_unlogged'
                        THEN 'relay.message_counts_unlogged' ELSE 'relay.message_counts' END;
    slot smallint := (pg_backend_pid() % 16)::smallint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format($q$
            INSERT INTO %s AS c (queue_name, status, priority, slot, n, payload_sum, payload_max)
            SELECT queue_name, status, priority, $1, count(*), sum(payload_size), max(payload_size)
            FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (queue_name, status, priority, slot) DO UPDATE
            SET n = c.n + excluded.n, payload_sum = c.payload_sum + excluded.payload_sum,
                payload_max = greatest(c.payload_max, excluded.payload_max)$q$, target) USING slot;
        INSERT INTO relay.message_types (queue_name, type)
        SELECT DISTINCT queue_name, type FROM new_rows WHERE type IS NOT NULL
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format($q$
            INSERT INTO %s AS c (queue_name, status, priority, slot, n, payload_sum)
            SELECT queue_name, status, priority, $1, -count(*), -sum(payload_size)
            FROM old_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (queue_name, status, priority, slot) DO UPDATE
            SET n = c.n + excluded.n, payload_sum = c.payload_sum + excluded.payload_sum$q$, target) USING slot;
    ELSE
        EXECUTE format($q$
            INSERT INTO %s AS c (queue_name, status, priority, slot, n, payload_sum, payload_max)
            SELECT queue_name, status, priority, $1, sum(d), sum(s), max(mx) FROM (
                SELECT queue_name, status, priority, -count(*) AS d, -sum(payload_size) AS s, 0 AS mx
                FROM old_rows GROUP BY 1, 2, 3
                UNION ALL
                SELECT queue_name, status, priority, count(*), sum(payload_size), max(payload_size)
                FROM new_rows GROUP BY 1, 2, 3) AS delta
            GROUP BY 1, 2, 3 HAVING sum(d) <> 0 OR sum(s) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT (queue_name, status, priority, slot) DO UPDATE
            SET n = c.n + excluded.n, payload_sum = c.payload_sum + excluded.payload_sum,
                payload_max = greatest(c.payload_max, excluded.payload_max)$q$, target) USING slot;
        -- Only pairs the old rows did not have (a type edit, a rename). A set difference: a
        -- join of the two transition tables was planned as a nested loop, quadratic in the
        -- rows updated (20,000 rows: 55 s; migration 0014).
        INSERT INTO relay.message_types (queue_name, type)
        SELECT queue_name, type FROM new_rows WHERE type IS NOT NULL
        EXCEPT SELECT queue_name, type FROM old_rows
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_count_insert AFTER INSERT ON relay.messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();
CREATE TRIGGER messages_count_update AFTER UPDATE ON relay.messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();
CREATE TRIGGER messages_count_delete AFTER DELETE ON relay.messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();
CREATE TRIGGER messages_count_insert AFTER INSERT ON relay.messages_unlogged
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();
CREATE TRIGGER messages_count_update AFTER UPDATE ON relay.messages_unlogged
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();
CREATE TRIGGER messages_count_delete AFTER DELETE ON relay.messages_unlogged
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();
CREATE TRIGGER messages_count_insert AFTER INSERT ON relay.messages_partitioned
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();
CREATE TRIGGER messages_count_update AFTER UPDATE ON relay.messages_partitioned
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();
CREATE TRIGGER messages_count_delete AFTER DELETE ON relay.messages_partitioned
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_messages();

-- Activity entries per (queue, action), kept by statement-level triggers like message_counts
-- (migration 0017): GET /queue/activity's `total` and `summary.by_action` come from here when
-- only the queue and the action filter, instead of counting every matching entry on each page
-- (0.3-0.4 s at 3,000,000 entries). `queue` is '' for entries of no queue (clear_all_queues).
-- Each statement adds to one of 16 slots by backend pid; reads sum the slots.
CREATE TABLE relay.activity_counts (
    queue   text NOT NULL,
    action  text NOT NULL,
    slot    smallint NOT NULL,
    n       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, action, slot)
);
ALTER TABLE relay.activity_counts SET (fillfactor = 50, autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_scale_factor = 0);

CREATE FUNCTION relay.count_activity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    own_slot smallint := (pg_backend_pid() % 16)::smallint;  -- not `slot`: that is a column
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.activity_counts AS c (queue, action, slot, n)
        SELECT coalesce(queue, ''), action, own_slot, count(*) FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (queue, action, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO relay.activity_counts AS c (queue, action, slot, n)
        SELECT coalesce(queue, ''), action, own_slot, -count(*) FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (queue, action, slot) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO relay.activity_counts AS c (queue, action, slot, n)
        SELECT q, a, own_slot, sum(d) FROM (
            SELECT coalesce(queue, '') AS q, action AS a, -count(*) AS d FROM old_rows GROUP BY 1, 2
            UNION ALL
            SELECT coalesce(queue, ''), action, count(*) FROM new_rows GROUP BY 1, 2) AS delta
        GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
        ON CONFLICT (queue, action, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER activity_count_insert AFTER INSERT ON relay.activity_log
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_activity();
CREATE TRIGGER activity_count_update AFTER UPDATE ON relay.activity_log
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_activity();
CREATE TRIGGER activity_count_delete AFTER DELETE ON relay.activity_log
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION relay.count_activity();

-- Storage tuning (migration 0004).
ALTER TABLE relay.messages SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);
-- LIKE ... INCLUDING ALL copied no storage parameters: give the unlogged table the same ones.
ALTER TABLE relay.messages_unlogged SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 2000
);

-- The counters are a few hundred rows updated by every statement. Half-empty pages let each
-- update be a HOT update on the same page, which page pruning cleans without a vacuum.
ALTER TABLE relay.message_counts SET (fillfactor = 50, autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_scale_factor = 0);
ALTER TABLE relay.message_counts_unlogged SET (fillfactor = 50, autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_scale_factor = 0);

-- GET /queue/status lists acknowledged messages newest-acknowledged first. Without this index
-- that is a sort of every acknowledged row (a million rows of history: about a second).
-- Ascending, read backwards (migration 0010): new entries go to the rightmost leaf, which splits
-- at the fillfactor instead of 50:50, and retention empties pages from the left end. Per queue
-- (migration 0012): it also serves retention and the queue-wide statements for acknowledged
-- messages, which the status index no longer holds.
CREATE INDEX messages_acknowledged_idx ON relay.messages (queue_name, acknowledged_at NULLS FIRST)
    WHERE status = 'acknowledged';
CREATE INDEX messages_unlogged_acknowledged_idx
    ON relay.messages_unlogged (queue_name, acknowledged_at NULLS FIRST) WHERE status = 'acknowledged';
CREATE INDEX messages_partitioned_acknowledged_idx
    ON relay.messages_partitioned (queue_name, acknowledged_at NULLS FIRST) WHERE status = 'acknowledged';
-- Drop the plain created_at indexes of the message tables. Every status change is a non-HOT
-- update that adds an entry to every index of the table; this one only served the admin
-- by-time endpoints (GET/DELETE /queue/messages), which can scan. One index less per update is
-- less write work on the hot path and less index bloat under sustained load (docs/scaling.md).
DROP INDEX relay.messages_created_idx;
DROP INDEX relay.messages_unlogged_created_at_idx;
DROP INDEX relay.messages_partitioned_created_idx;
-- The message tables keep their size; vacuum does not truncate their tail (migration 0006).
ALTER TABLE relay.messages SET (vacuum_truncate = false);
ALTER TABLE relay.messages_unlogged SET (vacuum_truncate = false);
-- Activity entries are stored as `json` (checked text) instead of `jsonb` (parsed into a tree).
-- Every dequeued, acked or failed message writes one entry; building its jsonb form was about
-- 40% of PostgreSQL's cost per entry (9 of 23 µs measured), paid by the same cores that serve
-- the queue. Entries are written far more often than read, and the few reads (one page of the
-- activity log) convert them to jsonb on the way out.
ALTER TABLE relay.activity_log ALTER COLUMN entry TYPE json USING entry::json;

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

-- Coarse statistics for the activity log, so its ANALYZE samples 3,000 rows instead of 30,000 and
-- holds its snapshot (which keeps every dead index entry of the database) briefly (migration 0011).
ALTER TABLE relay.activity_log
    ALTER COLUMN log_id SET STATISTICS 10, ALTER COLUMN ts SET STATISTICS 10,
    ALTER COLUMN action SET STATISTICS 10, ALTER COLUMN message_id SET STATISTICS 10,
    ALTER COLUMN queue SET STATISTICS 10, ALTER COLUMN consumer_id SET STATISTICS 10,
    ALTER COLUMN anomaly_type SET STATISTICS 10, ALTER COLUMN anomaly_severity SET STATISTICS 10,
    ALTER COLUMN entry SET STATISTICS 10;
ALTER TABLE relay.activity_log SET (autovacuum_vacuum_cost_limit = 2000);

-- Idempotency keys of partitioned queues (no unique index spans time partitions): a keyed insert
-- takes a transaction advisory lock on (queue, key), then looks with a fresh snapshot, so a
-- concurrent statement's insert of the key is seen once it commits (migration 0013).
CREATE FUNCTION relay.idempotency_key_free(qname text, ikey text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1768188793, hashtext(qname || '/' || ikey));
    RETURN NOT EXISTS (SELECT 1 FROM relay.messages_partitioned e
                       WHERE e.queue_name = qname AND e.idempotency_key = ikey);
END
$$;
