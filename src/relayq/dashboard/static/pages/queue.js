// Queue page: a header with the queue's settings and live counts, and one tab per message
// status plus activity, anomalies and consumers.
import { api } from '../api.js';
import { coalesce, h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { subscribe } from '../live.js';
import { errorText } from '../ui.js';
import { renderActivityTab, renderAnomaliesTab, renderConsumersTab } from './activity.js';
import { renderMessagesTab } from './messages.js';

const MESSAGE_TABS = ['main', 'processing', 'dead', 'acknowledged', 'archived'];
export const TABS = [...MESSAGE_TABS, 'activity', 'anomalies', 'consumers'];
// Keys of /queue/status for each message tab.
const STATUS_KEYS = { main: 'mainQueue', processing: 'processingQueue', dead: 'deadLetterQueue',
  acknowledged: 'acknowledgedQueue', archived: 'archivedQueue' };

function fetchStatus(name) {
  return api.get('queue/status', { queueName: name, include_messages: 'false' });
}

function tabLink(name, tab, active) {
  const count = MESSAGE_TABS.includes(tab) ? h('span', { class: 'tab-count', 'data-testid': `tab-count-${tab}` }, '…') : null;
  return h('a', { href: `#/queue/${encodeURIComponent(name)}/${tab}`, class: active ? 'tab active' : 'tab',
    role: 'tab', 'aria-selected': active ? 'true' : 'false', 'data-testid': `tab-${tab}` }, t(`tab.${tab}`), count);
}

function settingsLine(queue) {
  return h('p', { class: 'muted wrap', 'data-testid': 'queue-settings' },  // a description may be one long word
    [t(`queueType.${queue.queue_type}`),
      `${t('queues.ackTimeout')}: ${queue.ack_timeout_seconds}`,
      `${t('queues.maxAttempts')}: ${queue.max_attempts}`,
      queue.description].filter(Boolean).join(' · '));
}

function renderTab(content, name, tab, types, onChange) {
  if (MESSAGE_TABS.includes(tab)) return renderMessagesTab(content, { queue: name, queueType: tab, types, onChange });
  if (tab === 'activity') return renderActivityTab(content, { queue: name });
  if (tab === 'anomalies') return renderAnomaliesTab(content, { queue: name });
  return renderConsumersTab(content, { queue: name });
}

/** True when /queue/status counts no message at all (which is also how it answers for a queue that does not exist). */
function isEmpty(status) {
  return MESSAGE_TABS.every((key) => status[STATUS_KEYS[key]].length === 0);
}

/** Whether queue `name` exists (GET /queues/{name}: 404 QUEUE_NOT_FOUND when not). */
function queueExists(name) {
  return api.get(`queues/${encodeURIComponent(name)}`).then(() => true,
    (failure) => {
      if (failure.code === 'QUEUE_NOT_FOUND') return false;
      throw failure;
    });
}

/** Render the page of queue `name` with `tab` open; returns a cleanup function. */
export function renderQueuePage(root, { name, tab }) {
  const nav = h('nav', { class: 'tabs', role: 'tablist' }, TABS.map((key) => tabLink(name, key, key === tab)));
  const settings = h('div', {});
  const heading = h('div', { class: 'page-head' },
    h('div', {},
      h('a', { href: '#/queues', class: 'crumb', 'data-testid': 'back-to-queues' }, `← ${t('queues.title')}`),
      h('h1', { 'data-testid': 'queue-title' }, name),
      settings));
  const content = h('div', { class: 'tab-body' }, h('p', { class: 'muted' }, t('common.loading')));
  replace(root, h('section', { class: 'page' }, heading, nav, content));

  let controller = null;
  let closed = false;
  let missing = false;
  let starting = false;

  const setCounts = (text) => {
    for (const badge of nav.querySelectorAll('.tab-count')) badge.textContent = text;
  };

  /** Replace the tab with an error; for a queue that does not exist (any more), say so. */
  function showFailure(failure) {
    missing = failure.code === 'QUEUE_NOT_FOUND';
    controller?.cleanup();
    controller = null;
    setCounts('—');
    if (missing) replace(settings);
    replace(content, h('p', { class: 'form-error', 'data-testid': 'page-error' },
      missing ? t('queue.notFound', { name }) : errorText(failure)));
  }

  const refreshCounts = coalesce(async () => {
    const status = await fetchStatus(name);
    if (closed) return;
    // /queue/status answers for a deleted (or renamed) queue as for an empty one: only an empty
    // answer needs asking whether the queue still exists.
    if (isEmpty(status) || missing) {
      const exists = await queueExists(name);
      if (closed) return;
      if (!exists) {
        if (!missing) showFailure({ code: 'QUEUE_NOT_FOUND' });
        return;
      }
      if (missing) { // created again under this name
        start();
        return;
      }
    }
    for (const key of MESSAGE_TABS) {
      const badge = nav.querySelector(`[data-testid="tab-count-${key}"]`);
      if (badge) badge.textContent = String(status[STATUS_KEYS[key]].length);
    }
    controller?.setTypes?.(status.availableTypes);
  }, 500);

  async function start() {
    missing = false;
    starting = true;
    try {
      const [queue, status] = await Promise.all([api.get(`queues/${encodeURIComponent(name)}`), fetchStatus(name)]);
      if (closed) return;
      replace(settings, settingsLine(queue));
      controller?.cleanup();
      controller = renderTab(content, name, tab, status.availableTypes, refreshCounts);
      refreshCounts();
    } catch (failure) {
      if (!closed) showFailure(failure);
    } finally {
      starting = false;
    }
  }
  start();

  const unsubscribe = subscribe((event) => {
    if (event.queue && event.queue !== name && !event.payload?.force_refresh) return;
    // A first load that failed (a timeout, the server away) is tried again at the next event.
    if (!controller && !missing && !starting) start();
    refreshCounts();
    controller?.refresh(event);
  });
  return () => {
    closed = true;
    unsubscribe();
    refreshCounts.cancel();
    controller?.cleanup();
  };
}
