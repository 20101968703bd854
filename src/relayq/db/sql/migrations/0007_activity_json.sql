-- Activity entries are stored as `json` (checked text) instead of `jsonb` (parsed into a tree).
-- Every dequeued, acked or failed message writes one entry; building its jsonb form was about
-- 40% of PostgreSQL's cost per entry (9 of 23 µs measured), paid by the same cores that serve
-- the queue. Entries are written far more often than read, and the few reads (one page of the
-- activity log) convert them to jsonb on the way out.
ALTER TABLE relay.activity_log ALTER COLUMN entry TYPE json USING entry::json;
