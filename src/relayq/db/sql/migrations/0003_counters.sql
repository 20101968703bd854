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
        IF EXISTS (SELECT 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
                   WHERE n.type IS DISTINCT FROM o.type OR n.queue_name <> o.queue_name) THEN
            INSERT INTO relay.message_types (queue_name, type)
            SELECT DISTINCT queue_name, type FROM new_rows WHERE type IS NOT NULL
            ON CONFLICT DO NOTHING;
        END IF;
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
