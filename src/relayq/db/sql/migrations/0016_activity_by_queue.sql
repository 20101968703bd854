-- A queue's activity, newest first (the dashboard's Activity tab, GET /queue/activity?queue_name=)
-- read the whole log's time index backwards and kept the queue's entries: cheap for a queue that
-- makes most of the traffic, but a queue with a small share, or none lately, walked through
-- everyone else's entries (277 ms a page for an idle queue at 3,000,000 entries). Its own range
-- of this index gives its newest entries directly. Every entry writes one index entry more.
-- CREATE INDEX blocks activity writes until the migration commits (the writer buffers them, up
-- to ACTIVITY_BUFFER_MAX): 3.7 s for 3,000,000 entries on the machine of docs/scaling.md.
CREATE INDEX activity_log_queue_idx ON relay.activity_log (queue, ts, log_id);
