// Live updates over Server-Sent Events (/api/queue/events). Pages subscribe and get every
// `queue-update` event; they coalesce their own refetches (see dom.throttle) so a burst of
// events costs at most one request per interval. The stream also feeds the throughput
// sparklines, which only need counts per queue and time bucket.
import { apiUrl, getApiKey } from './api.js';

const ENABLED_STORAGE = 'relay.live';
const BUCKET_MS = 10_000;
const BUCKETS = 30; // five minutes of history

// While the stream is down the pages poll instead, so "live" never silently stops.
const POLL_MS = 2000;
const RETRY_MS = 5000;

const subscribers = new Set();
const statusListeners = new Set();
const throughput = new Map(); // queue -> Map(bucketIndex -> {in, out})
let source = null;
let status = 'off';
let hadError = false;
let pollTimer = null;
let retryTimer = null;

export function isLiveEnabled() {
  return localStorage.getItem(ENABLED_STORAGE) !== 'off';
}

export function liveStatus() {
  return status;
}

/** Subscribe to queue-update events; returns the unsubscribe function. */
export function subscribe(handler) {
  subscribers.add(handler);
  return () => subscribers.delete(handler);
}

export function onStatusChange(listener) {
  statusListeners.add(listener);
}

function setStatus(next) {
  status = next;
  for (const listener of statusListeners) listener(next);
}

function publish(event) {
  recordThroughput(event);
  for (const handler of subscribers) handler(event);
}

/** Open (or re-open, e.g. after the API key changed) the event stream if live mode is on. */
export function connect() {
  disconnect();
  if (!isLiveEnabled()) {
    setStatus('off');
    return;
  }
  setStatus('connecting');
  source = new EventSource(apiUrl('queue/events', { apiKey: getApiKey() }));
  source.addEventListener('open', () => {
    stopPolling();
    setStatus('live');
    // Changes made while the stream was down were never announced: make pages refetch.
    if (hadError) publish({ type: 'reconnect', queue: null, payload: { force_refresh: true } });
    hadError = false;
  });
  source.addEventListener('error', () => {
    hadError = true;
    setStatus('polling');
    startPolling();
    // EventSource retries network errors by itself, but gives up for good on an HTTP error
    // (e.g. a server without the stream): retry later ourselves.
    if (source && source.readyState === EventSource.CLOSED && !retryTimer) {
      retryTimer = setTimeout(() => {
        retryTimer = null;
        connect();
      }, RETRY_MS);
    }
  });
  source.addEventListener('queue-update', (message) => {
    try {
      publish(JSON.parse(message.data));
    } catch {
      // A malformed event is not worth breaking the page for.
    }
  });
}

export function disconnect() {
  if (source) source.close();
  source = null;
  stopPolling();
  clearTimeout(retryTimer);
  retryTimer = null;
}

function startPolling() {
  if (pollTimer) return;
  pollTimer = setInterval(() => publish({ type: 'poll', queue: null, payload: { force_refresh: true } }), POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

export function setLiveEnabled(enabled) {
  localStorage.setItem(ENABLED_STORAGE, enabled ? 'on' : 'off');
  connect();
  // Catch up on what happened while paused.
  if (enabled) publish({ type: 'resume', queue: null, payload: { force_refresh: true } });
}

function recordThroughput(event) {
  const payload = event.payload || {};
  if (!event.queue || !payload.count) return;
  const entering = payload.status === 'queued' && event.type === 'enqueue';
  const done = payload.status === 'acknowledged' && event.type === 'acknowledge';
  if (!entering && !done) return;
  if (!throughput.has(event.queue)) throughput.set(event.queue, new Map());
  const buckets = throughput.get(event.queue);
  const index = Math.floor(Date.now() / BUCKET_MS);
  const bucket = buckets.get(index) || { in: 0, out: 0 };
  if (entering) bucket.in += payload.count;
  else bucket.out += payload.count;
  buckets.set(index, bucket);
  for (const key of buckets.keys()) if (key <= index - BUCKETS) buckets.delete(key);
}

/** Per-bucket enqueued/acknowledged counts of one queue over the last five minutes, oldest first. */
export function throughputSeries(queue) {
  const buckets = throughput.get(queue) || new Map();
  const now = Math.floor(Date.now() / BUCKET_MS);
  const series = [];
  for (let index = now - BUCKETS + 1; index <= now; index++) {
    series.push(buckets.get(index) || { in: 0, out: 0 });
  }
  return series;
}

/** Messages per minute (enqueued, acknowledged) over the last minute. */
export function ratePerMinute(queue) {
  const recent = throughputSeries(queue).slice(-60_000 / BUCKET_MS);
  return {
    in: recent.reduce((sum, bucket) => sum + bucket.in, 0),
    out: recent.reduce((sum, bucket) => sum + bucket.out, 0),
  };
}
