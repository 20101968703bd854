-- A statement that updated many messages at once (a queue rename, a large admin move, the
-- drain of a backlog) took time quadratic in its rows: the counting trigger looked for changed
-- types with a join of its OLD and NEW transition tables, which the planner ran as a nested
-- loop (20,000 rows: 400 million comparisons, 55 s, holding the queue's lock for a rename).
-- The new (queue, type) pairs are now a set difference, linear in the rows.
CREATE OR REPLACE FUNCTION relay.count_messages() RETURNS trigger LANGUAGE plpgsql AS $$
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
