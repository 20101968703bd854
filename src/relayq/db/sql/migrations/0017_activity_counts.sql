-- Activity entries per (queue, action), kept by statement-level triggers like message_counts
-- (migration 0003): GET /queue/activity's `total` and `summary.by_action` counted every matching
-- entry on each page (0.3-0.4 s at 3,000,000 entries, on every refresh of the dashboard's
-- Activity tab). With no filter but the queue and the action they come from here. `queue` is ''
-- for entries of no queue (clear_all_queues). Each statement adds to one of 16 slots by backend
-- pid, so the writers of several processes rarely wait on one row; reads sum the slots.
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

-- The entries already there (one pass over the log: about a second per 3,000,000 entries).
INSERT INTO relay.activity_counts (queue, action, slot, n)
SELECT coalesce(queue, ''), action, 0, count(*) FROM relay.activity_log GROUP BY 1, 2;
