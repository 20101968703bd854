// A message tab of the queue page (main, processing, dead, acknowledged, archived): a table
// with server-side paging, sorting and filters, multi-select, and the message actions.
import { api, download, MAX_COUNT, parseJson } from '../api.js';
import {
  clamped, clipped, coalesce, h, isWaiting, localInputToIso, preview, replace, select, timeCell,
} from '../dom.js';
import { t } from '../i18n.js';
import { errorText, toast } from '../ui.js';
import {
  createMessageDialog, deleteMessagesDialog, editMessageDialog, historyDialog, moveMessagesDialog, QUEUE_TYPES,
} from './message-dialogs.js';

const PAGE_SIZES = [25, 50, 100, 250];
const EDITABLE = new Set(['main', 'dead']);
const STATUS_OF_TAB = { main: 'queued', processing: 'processing', dead: 'dead', acknowledged: 'acknowledged',
  archived: 'archived' };
// The SSE event type of messages entering each status (API.md §4); an event about a status with
// another type tells which messages left it.
const ENTER_TYPE = { queued: 'enqueue', processing: 'dequeue', dead: 'move_to_dlq', acknowledged: 'acknowledge',
  archived: 'archive' };

/** Columns per tab: [sort column or null, label key, cell renderer, cell class]. */
function columns(queueType) {
  const base = [
    ['id', 'messages.id', (m) => h('button', { type: 'button', class: 'link mono', 'data-testid': `msg-id-${m.id}`,
      onclick: () => historyDialog(m) }, m.id)],
    ['type', 'messages.type', (m) => clipped(m.type)],
    ['priority', 'messages.priority', (m) => h('span', { class: `priority p${m.priority}` }, m.priority)],
    ['attempt_count', 'messages.attempts', (m) => `${m.attempt_count} / ${m.max_attempts}`],
    ['created_at', 'messages.created', (m) => timeCell(m.created_at)],
  ];
  const extra = {
    // When a delayed message (delaySeconds, retry backoff) may be dequeued; "now" once it may.
    main: [['available_at', 'messages.available', (m) => isWaiting(m)
      ? h('span', { class: 'waiting', 'data-testid': `available-${m.id}` }, timeCell(m.available_at))
      : h('span', { class: 'muted', 'data-testid': `available-${m.id}` }, t('messages.availableNow'))]],
    processing: [
      ['consumer_id', 'messages.consumer', (m) => clipped(m.consumer_id)],
      ['locked_until', 'messages.leaseLeft', (m) => h('span', { class: 'lease', 'data-lease': m.locked_until ?? '',
        'data-testid': `lease-${m.id}` }, leaseText(m.locked_until))],
    ],
    dead: [['last_error', 'messages.lastError', (m) => clamped(m.last_error)]],
    acknowledged: [['acknowledged_at', 'messages.acknowledged', (m) => timeCell(m.acknowledged_at)]],
    archived: [],
  }[queueType];
  return [...base, ...extra,
    // The payload takes the width left over (ellipsis); the whole of it is in the history dialog.
    ['payload', 'messages.payload', (m) => h('code', { class: 'payload-preview', title: preview(m.payload, 2000) },
      preview(m.payload)), 'payload-cell']];
}

/** Time left on a lease, from its ISO deadline. */
function leaseText(lockedUntil) {
  if (!lockedUntil) return '—';
  const seconds = Math.round((new Date(lockedUntil).getTime() - Date.now()) / 1000);
  return seconds > 0 ? t('messages.secondsLeft', { seconds }) : t('messages.expired');
}

function tickLeases(root) {
  for (const el of root.querySelectorAll('[data-lease]')) {
    el.textContent = leaseText(el.dataset.lease);
    el.classList.toggle('expired', Boolean(el.dataset.lease) && new Date(el.dataset.lease) <= new Date());
  }
}

/**
 * Read a JSON file, give items without a queue the current one, and post it to /queue/import,
 * in chunks of the server's max_batch_size (its limit per import; an export can be larger).
 * Each chunk is all or nothing; a failure says how many were imported before it.
 */
async function importFile(file, queue) {
  let items;
  try {
    items = parseJson(await file.text());
  } catch {
    throw new Error(t('messages.importInvalid'));
  }
  const list = (Array.isArray(items) ? items : [items]).map((item) =>
    (item && typeof item === 'object' && !item.queue && !item.queue_name ? { ...item, queue } : item));
  const config = await api.get('queue/config').catch(() => ({}));
  const chunk = config.max_batch_size || 10000;
  let imported = 0;
  for (let start = 0; start === 0 || start < list.length; start += chunk) {
    const form = new FormData();
    form.append('file', new Blob([JSON.stringify(list.slice(start, start + chunk))], { type: 'application/json' }),
      file.name);
    try {
      imported += (await api.upload('queue/import', form)).count;
    } catch (failure) {
      if (!imported) throw failure;
      throw new Error(t('messages.importPartial', { count: imported, start, error: errorText(failure) }));
    }
  }
  return { message: t('messages.imported', { count: imported }) };
}

/**
 * Render the tab into `root`. `onChange` is called after any action that changes messages.
 * Returns {refresh, cleanup}: refresh is coalesced, so it may be called on every SSE event.
 */
export function renderMessagesTab(root, { queue, queueType, types, onChange }) {
  const state = { page: 1, limit: 50, sortBy: 'created_at', sortOrder: queueType === 'main' ? 'asc' : 'desc',
    filterType: '', filterPriority: '', filterAttempts: '', start: '', end: '', search: '' };
  // Each tab opens in the order its index keeps (the server then reads one page, not the backlog).
  if (queueType === 'main') state.sortBy = 'priority';
  if (queueType === 'main') state.sortOrder = 'desc';
  if (queueType === 'acknowledged') state.sortBy = 'acknowledged_at';
  // Selected ids, kept across refreshes and pages (a live update may move a selected row to
  // another page); cleared by an action, a filter change, or the message leaving this status.
  const selected = new Set();
  let messages = [];
  const cols = columns(queueType);

  const query = () => ({
    queueName: queue, sortBy: state.sortBy, sortOrder: state.sortOrder,
    filterType: state.filterType, filterPriority: state.filterPriority, filterAttempts: state.filterAttempts,
    startDate: localInputToIso(state.start), endDate: localInputToIso(state.end, { endOfSecond: true }),
    search: state.search.trim(),
  });

  // --- table -----------------------------------------------------------------------------
  const tbody = h('tbody', {});
  const headRow = h('tr', {});
  const selectAll = h('input', { type: 'checkbox', 'data-testid': 'select-all', 'aria-label': t('messages.selectAll') });
  const pageInfo = h('span', { 'data-testid': 'page-info' });
  const prev = h('button', { type: 'button', class: 'button small', 'data-testid': 'page-prev' }, `‹ ${t('pager.prev')}`);
  const next = h('button', { type: 'button', class: 'button small', 'data-testid': 'page-next' }, `${t('pager.next')} ›`);
  const selectionInfo = h('span', { class: 'muted', 'data-testid': 'selection-info' });
  const bulkTarget = select({ 'data-testid': 'bulk-move-target', 'aria-label': t('messages.moveTo') },
    QUEUE_TYPES.filter((type) => type !== queueType).map((type) => [type, t(`tab.${type}`)]));
  const bulkButtons = [
    h('button', { type: 'button', class: 'button small', 'data-testid': 'bulk-move', onclick: () => moveSelected() },
      t('messages.moveSelected')),
    h('button', { type: 'button', class: 'button small danger', 'data-testid': 'bulk-delete',
      onclick: () => deleteSelected() }, t('messages.deleteSelected')),
  ];

  function drawHead() {
    replace(headRow, h('th', { class: 'check' }, selectAll),
      cols.map(([column, label]) => {
        const active = state.sortBy === column;
        return h('th', { 'aria-sort': active ? `${state.sortOrder}ending` : 'none' },
          h('button', { type: 'button', class: 'sort', 'data-testid': `sort-${column}`, onclick: () => sortBy(column) },
            t(label), active ? (state.sortOrder === 'asc' ? ' ▲' : ' ▼') : ''));
      }),
      h('th', { class: 'actions' }, t('common.actions')));
  }

  function row(message) {
    const checkbox = h('input', { type: 'checkbox', checked: selected.has(message.id), 'data-testid': `msg-select-${message.id}`,
      'aria-label': t('messages.select'), onchange: (event) => {
        if (event.target.checked) selected.add(message.id);
        else selected.delete(message.id);
        drawSelection();
      } });
    return h('tr', { 'data-testid': `msg-row-${message.id}`, class: selected.has(message.id) ? 'selected' : '' },
      h('td', { class: 'check' }, checkbox),
      cols.map(([, label, cell, cellClass]) => h('td', { class: cellClass, 'data-label': t(label) }, cell(message))),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'button small', 'data-testid': `msg-history-${message.id}`,
          onclick: () => historyDialog(message) }, t('messages.history')),
        EDITABLE.has(queueType) ? h('button', { type: 'button', class: 'button small', 'data-testid': `msg-edit-${message.id}`,
          onclick: () => act(editMessageDialog(message, queueType)) }, t('action.edit')) : null,
        h('button', { type: 'button', class: 'button small', 'data-testid': `msg-move-${message.id}`,
          onclick: () => act(moveMessagesDialog([message.id], queueType)) }, t('action.move')),
        h('button', { type: 'button', class: 'button small danger', 'data-testid': `msg-delete-${message.id}`,
          onclick: () => act(deleteMessagesDialog([message.id], queueType)) }, t('action.delete'))));
  }

  function drawSelection() {
    const onPage = messages.filter((message) => selected.has(message.id)).length;
    selectionInfo.textContent = onPage === selected.size ? t('messages.selected', { count: selected.size })
      : t('messages.selectedOffPage', { count: selected.size, offPage: selected.size - onPage });
    for (const button of bulkButtons) button.disabled = selected.size === 0;
    bulkTarget.disabled = selected.size === 0;
    selectAll.checked = messages.length > 0 && messages.every((message) => selected.has(message.id));
    for (const tr of tbody.querySelectorAll('tr[data-testid^="msg-row-"]')) {
      tr.classList.toggle('selected', selected.has(tr.dataset.testid.slice('msg-row-'.length)));
    }
  }

  function drawRows(pagination) {
    replace(tbody, messages.length ? messages.map(row)
      : h('tr', {}, h('td', { colspan: cols.length + 2, class: 'muted empty', 'data-testid': 'messages-empty' },
        t('messages.empty'))));
    const totalPages = Math.max(1, pagination.totalPages);
    // A filtered count stops at a bound (totalExact false): "more than" that many.
    const exact = pagination.totalExact !== false;
    pageInfo.textContent = t(exact ? 'pager.info' : 'pager.infoAtLeast',
      { page: pagination.page, pages: totalPages, total: pagination.total });
    prev.disabled = state.page <= 1;
    next.disabled = !pagination.hasMore;
    drawSelection();
  }

  const refresh = coalesce(async () => {
    try {
      const result = await api.get(`queue/${queueType}/messages`,
        { ...query(), page: state.page, limit: state.limit, maxCount: MAX_COUNT });
      // Live updates can shrink the list under the pager: step back to the last page.
      if (result.messages.length === 0 && state.page > 1 && result.pagination.totalPages < state.page) {
        state.page = Math.max(1, result.pagination.totalPages);
        refresh();
        return;
      }
      messages = result.messages;
      errorBox.hidden = true;
      drawRows(result.pagination);
    } catch (failure) {
      replace(errorBox, errorText(failure));
      errorBox.hidden = false;
    }
  }, 500);

  function sortBy(column) {
    if (state.sortBy === column) state.sortOrder = state.sortOrder === 'asc' ? 'desc' : 'asc';
    else Object.assign(state, { sortBy: column, sortOrder: 'desc' });
    drawHead();
    refresh();
  }

  /** Run a dialog promise; when it produced a result, report it and refresh. */
  async function act(dialogPromise) {
    const result = await dialogPromise;
    if (!result) return;
    if (result.message) toast(result.message, 'success');
    selected.clear();
    refresh();
    onChange();
  }

  // The bulk bar's select has already chosen the destination; the dialog confirms it.
  const moveSelected = () => act(moveMessagesDialog([...selected], queueType, bulkTarget.value));
  const deleteSelected = () => act(deleteMessagesDialog([...selected], queueType));

  selectAll.addEventListener('change', () => {
    for (const message of messages) {
      if (selectAll.checked) selected.add(message.id);
      else selected.delete(message.id);
    }
    for (const box of tbody.querySelectorAll('input[type="checkbox"]')) box.checked = selectAll.checked;
    drawSelection();
  });
  prev.addEventListener('click', () => { state.page -= 1; refresh(); });
  next.addEventListener('click', () => { state.page += 1; refresh(); });

  // --- filters ---------------------------------------------------------------------------
  // Another filter shows other messages: a selection made under the old one would act on rows
  // no longer in view, so it is dropped.
  const setFilter = (key) => (event) => {
    state[key] = event.target.value;
    state.page = 1;
    selected.clear();
    drawSelection();
    refresh();
  };
  let searchTimer = null;
  const debounced = (key) => (event) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => setFilter(key)(event), 300);
  };
  const typeSelect = select({ 'data-testid': 'filter-type', 'aria-label': t('messages.type'), onchange: setFilter('filterType') },
    [['', t('filters.allTypes')], ...types.map((type) => [type, type])]);
  const filters = h('form', { class: 'filters', onsubmit: (event) => event.preventDefault() },
    h('label', { class: 'filter' }, h('span', {}, t('messages.type')), typeSelect),
    h('label', { class: 'filter' }, h('span', {}, t('messages.priority')),
      select({ 'data-testid': 'filter-priority', onchange: setFilter('filterPriority') },
        [['', t('filters.any')], ...[...Array(10).keys()].reverse().map((value) => [value, String(value)])])),
    h('label', { class: 'filter' }, h('span', {}, t('filters.minAttempts')),
      h('input', { type: 'number', min: 0, class: 'narrow', 'data-testid': 'filter-attempts', oninput: debounced('filterAttempts') })),
    h('label', { class: 'filter' }, h('span', {}, t('filters.from')),
      h('input', { type: 'datetime-local', step: 1, 'data-testid': 'filter-start', onchange: setFilter('start') })),
    h('label', { class: 'filter' }, h('span', {}, t('filters.to')),
      h('input', { type: 'datetime-local', step: 1, 'data-testid': 'filter-end', onchange: setFilter('end') })),
    h('label', { class: 'filter grow' }, h('span', {}, t('filters.search')),
      h('input', { type: 'search', placeholder: t('filters.searchPlaceholder'), 'data-testid': 'filter-search',
        oninput: debounced('search') })),
    h('button', { type: 'reset', class: 'button small', 'data-testid': 'filter-clear', onclick: () => {
      Object.assign(state, { filterType: '', filterPriority: '', filterAttempts: '', start: '', end: '', search: '', page: 1 });
      selected.clear();
      drawSelection();
      refresh();
    } }, t('filters.clear')));

  // --- toolbar actions -------------------------------------------------------------------
  const importInput = h('input', { type: 'file', accept: 'application/json,.json', hidden: true, 'data-testid': 'import-input',
    onchange: async (event) => {
      const [file] = event.target.files;
      event.target.value = '';
      if (!file) return;
      try {
        const result = await importFile(file, queue);
        toast(result.message, 'success');
        refresh();
        onChange();
      } catch (failure) {
        toast(errorText(failure), 'error');
      }
    } });
  const toolbar = h('div', { class: 'toolbar' },
    h('button', { type: 'button', class: 'button primary', 'data-testid': 'msg-create',
      onclick: () => act(createMessageDialog(queue)) }, `+ ${t('messages.create')}`),
    h('button', { type: 'button', class: 'button', 'data-testid': 'import', onclick: () => importInput.click() },
      t('messages.import')),
    importInput,
    h('button', { type: 'button', class: 'button', 'data-testid': 'export', onclick: () =>
      download(`queue/${queueType}/export`, query(), `${queueType}-queue-export.json`)
        .catch((failure) => toast(errorText(failure), 'error')) }, t('messages.export')),
    h('span', { class: 'spacer' }),
    selectionInfo, bulkTarget, bulkButtons);

  const errorBox = h('p', { class: 'form-error', hidden: true, 'data-testid': 'page-error' });
  const pageSize = select({ 'data-testid': 'page-size', 'aria-label': t('pager.size'), onchange: (event) => {
    state.limit = Number(event.target.value);
    state.page = 1;
    refresh();
  } }, PAGE_SIZES.map((size) => [size, t('pager.perPage', { size })]), state.limit);

  // On a phone the filters would push the table off screen: start them folded there.
  const filterPanel = h('details', { class: 'filter-panel', open: !window.matchMedia('(max-width: 720px)').matches },
    h('summary', { 'data-testid': 'filters-toggle' }, t('filters.title')), filters);
  replace(root,
    filterPanel, toolbar, errorBox,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'table responsive', 'data-testid': 'messages-table' }, h('thead', {}, headRow), tbody)),
    h('div', { class: 'pager' }, prev, pageInfo, next, pageSize));
  drawHead();
  drawSelection();
  refresh();

  const leaseTicker = queueType === 'processing' ? setInterval(() => tickLeases(tbody), 1000) : null;
  /** Forget selected messages that an event says left this status (taken, acknowledged, …). */
  function forgetLeft(event) {
    const payload = event?.payload;
    const status = STATUS_OF_TAB[queueType];
    if (event?.queue !== queue || payload?.status !== status || event.type === ENTER_TYPE[status]) return;
    let changed = false;
    for (const id of payload.ids ?? []) changed = selected.delete(id) || changed;
    if (changed) drawSelection();
  }

  return {
    refresh(event) {
      forgetLeft(event);
      refresh();
    },
    setTypes(nextTypes) {
      const current = typeSelect.value;
      replace(typeSelect, [['', t('filters.allTypes')], ...nextTypes.map((type) => [type, type])]
        .map(([value, label]) => h('option', { value, selected: value === current }, label)));
    },
    cleanup() {
      refresh.cancel();
      clearInterval(leaseTicker);
      clearTimeout(searchTimer);
    },
  };
}
