// Dialogs that act on messages: create, edit, move, delete, and the per-message history
// drawn from the activity log.
import { api } from '../api.js';
import { fmtBytes, fmtDuration, fmtTime, h, isWaiting } from '../dom.js';
import { t } from '../i18n.js';
import { confirmDialog, formDialog, openDialog, parseJsonField } from '../ui.js';

export const QUEUE_TYPES = ['main', 'processing', 'dead', 'acknowledged', 'archived'];
const PRIORITIES = [...Array(10).keys()].map((value) => [value, String(value)]);

function optionalInt(value) {
  return value === null || value === '' ? undefined : value;
}

/** Enqueue a message into `queue`; resolves with the API answer or undefined. */
export function createMessageDialog(queue) {
  return formDialog({
    title: t('messages.createTitle', { queue }), testid: 'message-dialog', submitLabel: t('action.create'), wide: true,
    fields: [
      { name: 'type', label: t('messages.type'), value: 'default', required: true },
      { name: 'priority', label: t('messages.priority'), type: 'select', value: 0, options: PRIORITIES },
      { name: 'payload', label: t('messages.payload'), type: 'textarea', value: '{\n  \n}' },
      { name: 'ackTimeout', label: t('queues.ackTimeout'), type: 'number', min: 0, help: t('messages.queueDefault') },
      { name: 'maxAttempts', label: t('queues.maxAttempts'), type: 'number', min: 1, help: t('messages.queueDefault') },
      { name: 'delaySeconds', label: t('messages.delay'), type: 'number', min: 0 },
    ],
    onSubmit: (values) => api.post('queue/message', {
      queue,
      type: values.type,
      priority: Number(values.priority),
      payload: parseJsonField(values.payload, t('messages.payload')),
      ackTimeout: optionalInt(values.ackTimeout),
      maxAttempts: optionalInt(values.maxAttempts),
      delaySeconds: optionalInt(values.delaySeconds),
    }),
  });
}

/** Edit type, priority and payload of a message that is not being processed. */
export function editMessageDialog(message, queueType) {
  return formDialog({
    title: t('messages.editTitle', { id: message.id }), testid: 'message-dialog', wide: true,
    fields: [
      { name: 'type', label: t('messages.type'), value: message.type ?? '' },
      { name: 'priority', label: t('messages.priority'), type: 'select', value: message.priority, options: PRIORITIES },
      { name: 'payload', label: t('messages.payload'), type: 'textarea',
        value: JSON.stringify(message.payload, null, 2) },
    ],
    onSubmit: (values) => api.put(`queue/message/${encodeURIComponent(message.id)}`, {
      type: values.type,
      priority: Number(values.priority),
      payload: parseJsonField(values.payload, t('messages.payload')),
    }, { queueType }),
  });
}

/** Move messages (ids) from one status to another; `target` preselects the destination. */
export function moveMessagesDialog(ids, fromQueue, target) {
  const targets = QUEUE_TYPES.filter((type) => type !== fromQueue);
  return formDialog({
    title: t('messages.moveTitle', { count: ids.length }), testid: 'move-dialog', submitLabel: t('action.move'),
    fields: [
      { name: 'toQueue', label: t('messages.moveTo'), type: 'select', value: target || targets[0],
        options: targets.map((type) => [type, t(`tab.${type}`)]) },
      { name: 'errorReason', label: t('messages.errorReason'), help: t('messages.errorReasonHelp') },
    ],
    onSubmit: ({ toQueue, errorReason }) => api.post('queue/move', {
      messages: ids, fromQueue, toQueue, errorReason: errorReason || undefined,
    }),
  });
}

/** Delete messages by id after confirmation (one id uses the single-message endpoint). */
export function deleteMessagesDialog(ids, queueType) {
  return confirmDialog({
    title: t('messages.deleteTitle', { count: ids.length }),
    message: t('messages.deleteMessage', { count: ids.length }),
    confirmLabel: t('action.delete'),
    onConfirm: () => (ids.length === 1
      ? api.del(`queue/message/${encodeURIComponent(ids[0])}`, { queueType })
      : api.post('queue/messages/delete', { messageIds: ids }, { queueType })),
  });
}

function detail(label, value) {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function messageDetails(message) {
  return h('dl', { class: 'details', 'data-testid': 'message-details' },
    detail(t('messages.id'), h('code', {}, message.id)),
    detail(t('messages.status'), t(`status.${message.status}`)),
    detail(t('messages.type'), message.type ?? '—'),
    detail(t('messages.priority'), message.priority),
    detail(t('messages.attempts'), `${message.attempt_count} / ${message.max_attempts}`),
    detail(t('messages.created'), fmtTime(message.created_at)),
    message.status === 'queued' ? detail(t('messages.available'), isWaiting(message)
      ? fmtTime(message.available_at) : t('messages.availableNow')) : null,
    detail(t('messages.consumer'), message.consumer_id ?? '—'),
    detail(t('messages.lastError'), message.last_error ?? '—'),
    detail(t('messages.size'), fmtBytes(message.payload_size)));
}

export function anomalyBadge(anomaly) {
  if (!anomaly) return null;
  return h('span', { class: `severity severity-${anomaly.severity}`, title: anomaly.description ?? '',
    'data-testid': 'anomaly-badge' }, `${t(`severity.${anomaly.severity}`)}: ${t(`anomaly.${anomaly.type}`)}`);
}

function historyEntry(entry) {
  const facts = [
    entry.consumer_id ? `${t('messages.consumer')}: ${entry.consumer_id}` : null,
    entry.attempt_count !== null ? `${t('messages.attempts')}: ${entry.attempt_count}` : null,
    entry.processing_time_ms !== null ? `${t('activity.processingTime')}: ${fmtDuration(entry.processing_time_ms)}` : null,
    entry.source_queue ? `${t(`tab.${entry.source_queue}`)} → ${t(`tab.${entry.dest_queue}`)}` : null,
    entry.error_reason ? `${t('messages.lastError')}: ${entry.error_reason}` : null,
  ].filter(Boolean);
  return h('li', { class: 'timeline-entry', 'data-testid': 'history-entry', 'data-action': entry.action },
    h('div', { class: 'timeline-head' },
      h('span', { class: `action-badge action-${entry.action}` }, t(`activityAction.${entry.action}`)),
      h('time', {}, fmtTime(entry.timestamp)),
      anomalyBadge(entry.anomaly)),
    facts.length ? h('div', { class: 'muted' }, facts.join(' · ')) : null);
}

/** Show a message's details and its full history from the activity log. */
export function historyDialog(message) {
  return openDialog({
    title: t('messages.historyTitle', { id: message.id }), testid: 'history-dialog', wide: true,
    render() {
      const list = h('ol', { class: 'timeline', 'data-testid': 'history-list' }, h('li', { class: 'muted' }, t('common.loading')));
      api.get(`queue/activity/message/${encodeURIComponent(message.id)}`).then(({ history }) => {
        list.replaceChildren(...(history.length
          ? history.map(historyEntry)
          : [h('li', { class: 'muted', 'data-testid': 'history-empty' }, t('messages.noHistory'))]));
      }).catch((error) => list.replaceChildren(h('li', { class: 'form-error' }, error.message)));
      // Opened from the activity log we only know the id: show the history alone.
      const known = Boolean(message.status);
      return h('div', { class: 'history' },
        known ? messageDetails(message) : null,
        known ? h('h3', {}, t('messages.payload')) : null,
        known ? h('pre', { class: 'payload', 'data-testid': 'history-payload' }, JSON.stringify(message.payload, null, 2)) : null,
        h('h3', {}, t('messages.history')),
        list);
    },
  });
}
