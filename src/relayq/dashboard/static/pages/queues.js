// Queues page: every queue with live counts per status, throughput, and the queue
// management actions (create, edit, purge, rename, delete).
import { api } from '../api.js';
import { coalesce, h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { ratePerMinute, subscribe, throughputSeries } from '../live.js';
import { confirmDialog, errorText, formDialog, offsetPager, toast } from '../ui.js';

export const STATUSES = ['queued', 'processing', 'dead', 'acknowledged', 'archived'];
const QUEUE_TYPES = ['standard', 'unlogged', 'partitioned'];
const PARTITION_INTERVALS = ['hourly', 'daily', 'weekly'];

/** One request for every queue and status: GET /queues carries all five counts. */
async function fetchQueues() {
  const { queues } = await api.get('queues');
  return queues.map((queue) => ({
    ...queue,
    counts: { queued: queue.message_count, processing: queue.processing_count, dead: queue.dead_count,
      acknowledged: queue.acknowledged_count ?? 0, archived: queue.archived_count ?? 0 },
  }));
}

/** A small SVG line chart of enqueued (in) and acknowledged (out) messages per 10 s bucket. */
function sparkline(name) {
  const series = throughputSeries(name);
  const width = 120;
  const height = 28;
  const peak = Math.max(1, ...series.map((bucket) => Math.max(bucket.in, bucket.out)));
  const points = (key) => series.map((bucket, index) =>
    `${((index / (series.length - 1)) * width).toFixed(1)},${(height - 2 - (bucket[key] / peak) * (height - 4)).toFixed(1)}`,
  ).join(' ');
  const svgNs = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNs, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('class', 'sparkline');
  svg.setAttribute('data-testid', `sparkline-${name}`);
  svg.setAttribute('aria-label', t('queues.throughput'));
  for (const key of ['in', 'out']) {
    const line = document.createElementNS(svgNs, 'polyline');
    line.setAttribute('points', points(key));
    line.setAttribute('class', `spark-${key}`);
    svg.append(line);
  }
  const rate = ratePerMinute(name);
  return h('div', { class: 'throughput' }, svg,
    h('small', { 'data-testid': `rate-${name}` }, t('queues.rate', { in: rate.in, out: rate.out })));
}

function countCell(queue, status) {
  const value = queue.counts[status];
  return h('td', { class: `num count-${status}`, 'data-label': t(`status.${status}`) },
    h('a', { href: `#/queue/${encodeURIComponent(queue.name)}/${status === 'queued' ? 'main' : status}`,
      class: value ? `badge badge-${status}` : 'badge badge-zero',
      'data-testid': `count-${queue.name}-${status}` }, String(value)));
}

function actionButton(label, testid, onclick, extraClass = '') {
  return h('button', { type: 'button', class: `button small ${extraClass}`, 'data-testid': testid, onclick }, label);
}

function queueRow(queue, reload) {
  const isDefault = queue.name === 'default';
  return h('tr', { 'data-testid': `queue-row-${queue.name}` },
    h('td', { class: 'queue-name', 'data-label': t('queues.name') },
      h('a', { href: `#/queue/${encodeURIComponent(queue.name)}/main`, 'data-testid': `queue-link-${queue.name}` },
        queue.name),
      queue.description ? h('small', { class: 'muted clamp', title: queue.description }, queue.description) : null),
    h('td', { 'data-label': t('queues.type') }, t(`queueType.${queue.queue_type}`)),
    STATUSES.map((status) => countCell(queue, status)),
    h('td', { 'data-label': t('queues.throughput') }, sparkline(queue.name)),
    h('td', { class: 'actions' },
      actionButton(t('action.edit'), `queue-edit-${queue.name}`, () => editQueue(queue, reload)),
      actionButton(t('action.purge'), `queue-purge-${queue.name}`, () => purgeQueue(queue, reload)),
      isDefault ? null : actionButton(t('action.rename'), `queue-rename-${queue.name}`, () => renameQueue(queue, reload)),
      isDefault ? null : actionButton(t('action.delete'), `queue-delete-${queue.name}`,
        () => deleteQueue(queue, reload), 'danger')));
}

function positiveOrUndefined(value) {
  return value === null || value === '' ? undefined : value;
}

async function createQueue(reload) {
  const defaults = await api.get('queue/config').catch(() => ({ ack_timeout_seconds: 30, max_attempts: 3 }));
  const created = await formDialog({
    title: t('queues.create'), testid: 'queue-dialog', submitLabel: t('action.create'),
    fields: [
      { name: 'name', label: t('queues.name'), required: true, pattern: '[A-Za-z0-9_-]{1,64}',
        help: t('queues.nameHelp') },
      { name: 'queue_type', label: t('queues.type'), type: 'select', value: 'standard',
        options: QUEUE_TYPES.map((type) => [type, t(`queueType.${type}`)]) },
      { name: 'ack_timeout_seconds', label: t('queues.ackTimeout'), type: 'number', min: 1,
        value: defaults.ack_timeout_seconds },
      { name: 'max_attempts', label: t('queues.maxAttempts'), type: 'number', min: 1, value: defaults.max_attempts },
      { name: 'retry_delay_seconds', label: t('queues.retryDelay'), type: 'number', min: 0, value: 0 },
      { name: 'partition_interval', label: t('queues.partitionInterval'), type: 'select', value: '',
        options: [['', '—'], ...PARTITION_INTERVALS.map((value) => [value, t(`interval.${value}`)])],
        help: t('queues.partitionHelp') },
      { name: 'retention_interval', label: t('queues.retention'), placeholder: '7 days' },
      { name: 'description', label: t('queues.description'), type: 'textarea', rows: 2 },
    ],
    onSubmit: (values) => api.post('queues', {
      ...values,
      name: values.name.trim(),
      ack_timeout_seconds: positiveOrUndefined(values.ack_timeout_seconds),
      max_attempts: positiveOrUndefined(values.max_attempts),
      retry_delay_seconds: positiveOrUndefined(values.retry_delay_seconds),
      partition_interval: values.partition_interval || undefined,
      retention_interval: values.retention_interval.trim() || undefined,
      description: values.description || undefined,
    }),
  });
  if (created) {
    toast(created.message, 'success');
    reload();
  }
}

async function editQueue(queue, reload) {
  const updated = await formDialog({
    title: t('queues.editTitle', { name: queue.name }), testid: 'queue-dialog',
    fields: [
      { name: 'ack_timeout_seconds', label: t('queues.ackTimeout'), type: 'number', min: 1,
        value: queue.ack_timeout_seconds },
      { name: 'max_attempts', label: t('queues.maxAttempts'), type: 'number', min: 1, value: queue.max_attempts },
      { name: 'retry_delay_seconds', label: t('queues.retryDelay'), type: 'number', min: 0,
        value: queue.retry_delay_seconds ?? 0 },
      { name: 'description', label: t('queues.description'), type: 'textarea', rows: 2,
        value: queue.description ?? '' },
    ],
    onSubmit: (values) => api.patch(`queues/${encodeURIComponent(queue.name)}`, {
      ack_timeout_seconds: positiveOrUndefined(values.ack_timeout_seconds),
      max_attempts: positiveOrUndefined(values.max_attempts),
      retry_delay_seconds: positiveOrUndefined(values.retry_delay_seconds),
      description: values.description,
    }),
  });
  if (updated) {
    toast(updated.message, 'success');
    reload();
  }
}

async function purgeQueue(queue, reload) {
  const result = await confirmDialog({
    title: t('queues.purgeTitle', { name: queue.name }), message: t('queues.purgeMessage'),
    confirmLabel: t('action.purge'),
    fields: [{ name: 'status', label: t('queues.purgeStatus'), type: 'select', value: 'all',
      options: [['all', t('status.all')], ...STATUSES.map((status) => [status, t(`status.${status}`)])] }],
    onConfirm: ({ status }) => api.post(`queues/${encodeURIComponent(queue.name)}/purge`, { status }),
  });
  if (result) {
    toast(result.message, 'success');
    reload();
  }
}

async function renameQueue(queue, reload) {
  const result = await formDialog({
    title: t('queues.renameTitle', { name: queue.name }), testid: 'queue-dialog', submitLabel: t('action.rename'),
    fields: [{ name: 'newName', label: t('queues.newName'), required: true, value: queue.name,
      pattern: '[A-Za-z0-9_-]{1,64}', help: t('queues.nameHelp') }],
    onSubmit: ({ newName }) => api.post(`queues/${encodeURIComponent(queue.name)}/rename`, { newName: newName.trim() }),
  });
  if (result) {
    toast(result.message, 'success');
    reload();
  }
}

async function deleteQueue(queue, reload) {
  const active = queue.counts.queued + queue.counts.processing;
  const result = await confirmDialog({
    title: t('queues.deleteTitle', { name: queue.name }),
    message: active ? t('queues.deleteNotEmpty', { count: active }) : t('queues.deleteMessage'),
    confirmLabel: t('action.delete'),
    fields: [{ name: 'force', label: t('queues.force'), type: 'checkbox', value: false }],
    onConfirm: ({ force }) => api.del(`queues/${encodeURIComponent(queue.name)}`, { force: force ? 'true' : 'false' }),
  });
  if (result) {
    toast(result.message, 'success');
    reload();
  }
}

// Rows drawn at once: 10,000 queues drawn whole took 5.7 s, and again on every refresh.
const QUEUES_PAGE = 200;

/** Render the queues page into `root`; returns a cleanup function. */
export function renderQueuesPage(root) {
  const body = h('tbody', {}, h('tr', {}, h('td', { colspan: 9, class: 'muted' }, t('common.loading'))));
  const error = h('p', { class: 'form-error', hidden: true, 'data-testid': 'page-error' });
  let queues = [];
  let loaded = false;
  let offset = 0;
  let needle = '';

  const pager = offsetPager(QUEUES_PAGE, (at) => { offset = at; draw(); }, 'queues-page');
  pager.element.hidden = true;
  const filter = h('input', { type: 'search', class: 'queue-filter', 'data-testid': 'queues-filter',
    placeholder: t('queues.filter'), 'aria-label': t('queues.filter'),
    oninput: (event) => { needle = event.target.value.trim().toLowerCase(); offset = 0; draw(); } });

  const draw = () => {
    const shown = needle ? queues.filter((queue) => queue.name.toLowerCase().includes(needle)) : queues;
    if (offset >= shown.length) offset = Math.max(0, Math.floor((shown.length - 1) / QUEUES_PAGE) * QUEUES_PAGE);
    const rows = shown.slice(offset, offset + QUEUES_PAGE);
    replace(body, rows.length
      ? rows.map((queue) => queueRow(queue, reload))
      : h('tr', {}, h('td', { colspan: 9, class: 'muted' }, t(queues.length ? 'common.noResults' : 'queues.empty'))));
    pager.element.hidden = shown.length <= QUEUES_PAGE;
    pager.show(offset, shown.length);
  };

  let cost = 0; // milliseconds the last drawing took (not the request: a slow answer is not ours)
  const reload = coalesce(async () => {
    try {
      queues = await fetchQueues();
      loaded = true;
      error.hidden = true;
      const started = performance.now();
      draw();
      cost = performance.now() - started;
    } catch (failure) {
      if (!loaded) {
        // Nothing to show yet: the error takes the place of "Loading…".
        replace(body, h('tr', {}, h('td', { colspan: 9, class: 'form-error', 'data-testid': 'queues-error' },
          errorText(failure))));
        return;
      }
      replace(error, errorText(failure));
      error.hidden = false;
    }
  // Refetch at most every half second, and spend at most a fifth of the time drawing: one
  // request carries every queue, but rows take a while to draw. Never wait more than 5 s. (It
  // waited 25 ms per queue, from when each queue had a request of its own: counts stayed 25 s
  // old with 1,000 queues.)
  }, () => Math.min(5000, Math.max(500, 4 * cost)));

  replace(root,
    h('section', { class: 'page' },
      h('div', { class: 'page-head' },
        h('h1', {}, t('queues.title')),
        filter,
        h('button', { type: 'button', class: 'button primary', 'data-testid': 'queue-create',
          onclick: () => createQueue(reload) }, `+ ${t('queues.create')}`)),
      error,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'table responsive', 'data-testid': 'queues-table' },
          h('thead', {}, h('tr', {},
            h('th', {}, t('queues.name')), h('th', {}, t('queues.type')),
            STATUSES.map((status) => h('th', { class: 'num' }, t(`status.${status}`))),
            h('th', {}, t('queues.throughput')), h('th', {}, t('common.actions')))),
          body)),
      pager.element));

  reload();
  const unsubscribe = subscribe(() => reload());
  // Sparklines move with time even when nothing happens.
  const ticker = setInterval(draw, 10_000);
  return () => {
    unsubscribe();
    clearInterval(ticker);
    reload.cancel();
  };
}
