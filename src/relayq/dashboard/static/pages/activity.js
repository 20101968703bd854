// The activity, anomalies and consumers tabs of the queue page. Filters map one to one onto
// the query parameters of /api/queue/activity, /activity/anomalies and /activity/consumers.
import { api, MAX_COUNT } from '../api.js';
import { clamped, clipped, coalesce, fmtDuration, h, replace, select, timeCell } from '../dom.js';
import { t } from '../i18n.js';
import { errorText, offsetPager } from '../ui.js';
import { anomalyBadge, historyDialog } from './message-dialogs.js';

export const ACTIONS = ['enqueue', 'dequeue', 'acknowledge', 'nack', 'move_to_dlq', 'timeout_requeue',
  'timeout_to_dlq', 'touch', 'move', 'delete', 'bulk_delete', 'clear_queue', 'clear_all_queues', 'create_queue',
  'update_queue', 'rename_queue', 'delete_queue', 'purge_queue'];
export const ANOMALY_TYPES = ['flash_message', 'burst_dequeue', 'large_payload', 'long_processing', 'lock_stolen',
  'near_dlq', 'dlq_movement', 'zombie_message', 'bulk_enqueue', 'bulk_delete', 'bulk_move', 'queue_cleared'];
const SEVERITIES = ['critical', 'warning', 'info'];
const PAGE = 50;
// The server writes activity entries in the background (every ACTIVITY_FLUSH_INTERVAL_MS,
// 100 ms by default), so the refetch an event triggers can run before the entry it announces
// is stored. One more refetch this long after the last event picks it up.
const SETTLE_MS = 400;

/**
 * datetime-local value → whole Unix seconds ('' when empty), as the activity endpoints expect;
 * they read a whole `end_time` as the end of that second, so "to" includes the second shown.
 */
function toUnixSeconds(value) {
  if (!value) return '';
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? '' : Math.floor(ms / 1000);
}

function messageLink(id) {
  if (!id) return '—';
  return h('button', { type: 'button', class: 'link mono', 'data-testid': `activity-msg-${id}`,
    onclick: () => historyDialog({ id }) }, id);
}

function chip(label, count, kind = '') {
  return h('span', { class: `chip ${kind}`, 'data-testid': `summary-${label}` }, `${label}: `, h('strong', {}, count));
}

/**
 * Shared skeleton of a filterable, paged list: builds the filter form from `fields`, and calls
 * `load(filters, offset)` → {rows, total, summary}. Returns {refresh, cleanup}.
 */
function filteredList(root, { fields, head, load, drawRow, testid, paged = true, numeric = [] }) {
  const filters = Object.fromEntries(fields.map((field) => [field.key, '']));
  let offset = 0;
  const tbody = h('tbody', {});
  const summary = h('div', { class: 'summary', 'data-testid': `${testid}-summary` });
  const pager = offsetPager(PAGE, (at) => { offset = at; refresh(); });
  const errorBox = h('p', { class: 'form-error', hidden: true, 'data-testid': 'page-error' });

  const refresh = coalesce(async () => {
    try {
      const result = await load(filters, offset);
      replace(tbody, result.rows.length ? result.rows.map(drawRow)
        : h('tr', {}, h('td', { colspan: head.length, class: 'muted empty' }, t('common.noResults'))));
      replace(summary, result.summary);
      pager.show(offset, result.total, result.exact !== false); // a bounded count (MAX_COUNT) reads "more than"
      errorBox.hidden = true;
    } catch (failure) {
      replace(errorBox, errorText(failure));
      errorBox.hidden = false;
    }
  }, 500);

  const onFilter = (key, read = (el) => el.value) => (event) => {
    filters[key] = read(event.target);
    offset = 0;
    refresh();
  };
  const inputFor = (field) => {
    const attrs = { 'data-testid': `filter-${field.key}` };
    if (field.options) return select({ ...attrs, onchange: onFilter(field.key) }, [['', t('filters.any')], ...field.options]);
    if (field.type === 'checkbox') {
      return h('input', { ...attrs, type: 'checkbox', onchange: onFilter(field.key, (el) => (el.checked ? 'true' : '')) });
    }
    return h('input', { ...attrs, type: field.type || 'search', step: field.type === 'datetime-local' ? 1 : undefined,
      onchange: onFilter(field.key) });
  };

  replace(root,
    h('form', { class: 'filters', onsubmit: (event) => event.preventDefault() },
      fields.map((field) => h('label', { class: field.type === 'checkbox' ? 'filter filter-check' : 'filter' },
        h('span', {}, field.label), inputFor(field)))),
    summary, errorBox,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'table responsive', 'data-testid': `${testid}-table` },
        h('thead', {}, h('tr', {}, head.map((label, i) => h('th', numeric.includes(i) ? { class: 'num' } : {}, label)))),
        tbody)),
    paged ? pager.element : null);
  refresh();

  // Live updates: refetch now (for what is already stored) and once more SETTLE_MS after the
  // last event of a burst (for the entries still in the server's buffer). Both go through the
  // coalesced refresh, so a burst still costs at most one request per 500 ms.
  let settleTimer = null;
  let lastEvent = 0;
  const settle = () => {
    const wait = lastEvent + SETTLE_MS - Date.now();
    if (wait > 0) {
      settleTimer = setTimeout(settle, wait);
      return;
    }
    settleTimer = null;
    refresh();
  };
  const liveRefresh = () => {
    refresh();
    lastEvent = Date.now();
    if (!settleTimer) settleTimer = setTimeout(settle, SETTLE_MS);
  };
  return {
    refresh: liveRefresh,
    cleanup: () => {
      refresh.cancel();
      clearTimeout(settleTimer);
    },
  };
}

/** Activity log of one queue, with the server's count of every matching entry by action. */
export function renderActivityTab(root, { queue }) {
  const head = [t('activity.time'), t('activity.action'), t('messages.id'), t('messages.type'), t('messages.consumer'),
    t('messages.attempts'), t('activity.processingTime'), t('messages.lastError'), t('activity.anomaly')];
  return filteredList(root, {
    testid: 'activity', head,
    fields: [
      { key: 'action', label: t('activity.action'), options: ACTIONS.map((a) => [a, t(`activityAction.${a}`)]) },
      { key: 'message_id', label: t('messages.id') },
      { key: 'consumer_id', label: t('messages.consumer') },
      { key: 'start_time', label: t('filters.from'), type: 'datetime-local' },
      { key: 'end_time', label: t('filters.to'), type: 'datetime-local' },
      { key: 'has_anomaly', label: t('activity.onlyAnomalies'), type: 'checkbox' },
    ],
    async load(filters, offset) {
      const result = await api.get('queue/activity', { ...filters, queue_name: queue, limit: PAGE, offset,
        start_time: toUnixSeconds(filters.start_time), end_time: toUnixSeconds(filters.end_time),
        maxCount: MAX_COUNT });
      const byAction = result.summary?.by_action ?? {};
      const exact = result.pagination.totalExact !== false;
      return {
        rows: result.logs, total: result.pagination.total, exact,
        summary: [h('span', { class: 'muted', 'data-testid': 'activity-summary-scope' },
          exact ? t('activity.summaryAll') : t('activity.summaryNewest', { count: result.pagination.total })),
          Object.entries(byAction).map(([action, count]) => chip(t(`activityAction.${action}`), count))],
      };
    },
    drawRow: (entry) => h('tr', { class: entry.anomaly ? `row-${entry.anomaly.severity}` : '',
      'data-testid': `activity-row-${entry.log_id}`, 'data-action': entry.action },
      h('td', { 'data-label': head[0] }, timeCell(entry.timestamp)),
      h('td', { 'data-label': head[1] }, h('span', { class: `action-badge action-${entry.action}` },
        t(`activityAction.${entry.action}`)),
        entry.source_queue ? h('small', { class: 'muted block' },
          `${t(`tab.${entry.source_queue}`)} → ${t(`tab.${entry.dest_queue}`)}`) : null),
      h('td', { 'data-label': head[2] }, messageLink(entry.message_id)),
      h('td', { 'data-label': head[3] }, clipped(entry.message_type)),
      h('td', { 'data-label': head[4] }, clipped(entry.consumer_id)),
      h('td', { 'data-label': head[5] }, entry.attempt_count ?? '—'),
      h('td', { 'data-label': head[6] }, fmtDuration(entry.processing_time_ms)),
      h('td', { 'data-label': head[7] }, clamped(entry.error_reason)),
      h('td', { 'data-label': head[8] }, anomalyBadge(entry.anomaly) ?? '—')),
  });
}

/** Anomalies of one queue, with the server's summary by severity and by type. */
export function renderAnomaliesTab(root, { queue }) {
  const head = [t('activity.time'), t('activity.severity'), t('activity.anomalyType'), t('activity.description'),
    t('activity.action'), t('messages.id'), t('messages.consumer')];
  return filteredList(root, {
    testid: 'anomalies', head,
    fields: [
      { key: 'severity', label: t('activity.severity'), options: SEVERITIES.map((s) => [s, t(`severity.${s}`)]) },
      { key: 'type', label: t('activity.anomalyType'), options: ANOMALY_TYPES.map((a) => [a, t(`anomaly.${a}`)]) },
      { key: 'start_time', label: t('filters.from'), type: 'datetime-local' },
      { key: 'end_time', label: t('filters.to'), type: 'datetime-local' },
      { key: 'sort_by', label: t('filters.sortBy'),
        options: ['timestamp', 'severity', 'type', 'action'].map((key) => [key, t(`sort.${key}`)]) },
      { key: 'sort_order', label: t('filters.sortOrder'), options: [['desc', t('sort.desc')], ['asc', t('sort.asc')]] },
    ],
    async load(filters, offset) {
      const result = await api.get('queue/activity/anomalies', { ...filters, queue_name: queue, limit: PAGE, offset,
        start_time: toUnixSeconds(filters.start_time), end_time: toUnixSeconds(filters.end_time),
        maxCount: MAX_COUNT });
      const { summary } = result;
      const exact = result.pagination.totalExact !== false;
      return {
        rows: result.anomalies, total: summary.total, exact,
        summary: [
          exact ? null : h('span', { class: 'muted', 'data-testid': 'anomalies-summary-scope' },
            t('activity.summaryNewest', { count: summary.total })),
          chip(t('activity.total'), summary.total),
          SEVERITIES.map((s) => chip(t(`severity.${s}`), summary.by_severity[s] ?? 0, `severity-${s}`)),
          Object.entries(summary.by_type).map(([type, count]) => chip(t(`anomaly.${type}`), count)),
        ],
      };
    },
    drawRow: (entry) => h('tr', { class: `row-${entry.anomaly.severity}`, 'data-testid': `anomaly-row-${entry.log_id}` },
      h('td', { 'data-label': head[0] }, timeCell(entry.timestamp)),
      h('td', { 'data-label': head[1] }, h('span', { class: `severity severity-${entry.anomaly.severity}` },
        t(`severity.${entry.anomaly.severity}`))),
      h('td', { 'data-label': head[2] }, t(`anomaly.${entry.anomaly.type}`)),
      h('td', { 'data-label': head[3] }, clamped(entry.anomaly.description)),  // it may quote a 10,000-character error
      h('td', { 'data-label': head[4] }, entry.action ? t(`activityAction.${entry.action}`) : '—'),
      h('td', { 'data-label': head[5] }, messageLink(entry.message_id)),
      h('td', { 'data-label': head[6] }, clipped(entry.consumer_id))),
  });
}

/** Per-consumer counters of one queue. */
export function renderConsumersTab(root, { queue }) {
  const head = [t('messages.consumer'), t('consumers.dequeued'), t('consumers.acknowledged'), t('consumers.failed'),
    t('consumers.lastDequeue'), t('consumers.lastAck')];
  return filteredList(root, {
    testid: 'consumers', head, paged: false, numeric: [1, 2, 3],  // right-aligned, as their cells
    fields: [{ key: 'consumer_id', label: t('messages.consumer') }],
    async load(filters) {
      const { stats } = await api.get('queue/activity/consumers', { consumer_id: filters.consumer_id,
        queue_name: queue });
      const rows = Object.entries(stats).map(([id, stat]) => ({ id, ...stat }));
      return {
        rows, total: rows.length,
        summary: [h('span', { class: 'muted' }, t('consumers.note')), chip(t('activity.total'), rows.length)],
      };
    },
    drawRow: (row) => h('tr', { 'data-testid': `consumer-row-${row.id}` },
      h('td', { 'data-label': head[0] }, h('code', { class: 'clip', title: row.id }, row.id)),  // ids run to 500 characters
      h('td', { class: 'num', 'data-label': head[1] }, row.dequeue_count ?? 0),
      h('td', { class: 'num', 'data-label': head[2] }, row.ack_count ?? 0),
      h('td', { class: 'num', 'data-label': head[3] }, row.fail_count ?? 0),
      h('td', { 'data-label': head[4] }, timeCell(row.last_dequeue)),
      h('td', { 'data-label': head[5] }, timeCell(row.last_ack))),
  });
}
