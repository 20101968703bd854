// Shared widgets: toasts, modal dialogs built on <dialog>, and form dialogs whose submit
// handler may throw (the error is shown inside the dialog, which stays open).
import { parseJson } from './api.js';
import { h, replace, select } from './dom.js';
import { t } from './i18n.js';

/** Show a short notice at the bottom of the screen. kind: info | success | error. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  const item = h('div', { class: `toast toast-${kind}`, role: 'status', 'data-testid': 'toast' }, text);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 7000 : 3500);
}

/** True when a 401 means "no key sent" rather than "wrong key". */
export function isMissingKey(error) {
  return /missing/i.test((error.body && error.body.message) || '');
}

/** Human text for any error thrown by the API client or by the page code. */
export function errorText(error) {
  if (error && error.status === 401) return isMissingKey(error) ? t('auth.required') : t('auth.invalid');
  if (error && error.code === 'TIMEOUT') return t('error.timeout');
  // The server's text names the API's `force=true`; the dashboard's control is a checkbox.
  if (error && error.code === 'QUEUE_NOT_EMPTY') return t('error.queueNotEmpty');
  return (error && error.message) || String(error);
}

/** Open a modal; `render(close)` returns its content. Resolves with the value passed to close(). */
export function openDialog({ title, testid = 'dialog', wide = false, render }) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: wide ? 'dialog dialog-wide' : 'dialog', 'data-testid': testid });
    const close = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      close(undefined);
    });
    dialog.append(
      h('header', { class: 'dialog-head' },
        h('h2', {}, title),
        h('button', { class: 'icon-button', type: 'button', 'aria-label': t('action.close'),
          'data-testid': 'dialog-close', onclick: () => close(undefined) }, '✕')),
      render(close),
    );
    document.body.append(dialog);
    dialog.showModal();
  });
}

function fieldInput(field) {
  const common = { name: field.name, id: `field-${field.name}`, 'data-testid': `field-${field.name}`,
    required: field.required, placeholder: field.placeholder };
  switch (field.type) {
    case 'select':
      return select(common, field.options, field.value);
    case 'textarea':
      return h('textarea', { ...common, rows: field.rows || 8, spellcheck: 'false' }, field.value ?? '');
    case 'checkbox':
      return h('input', { ...common, type: 'checkbox', checked: field.value });
    default:
      return h('input', { ...common, type: field.type || 'text', value: field.value ?? '',
        min: field.min, max: field.max, step: field.step, pattern: field.pattern });
  }
}

function readValues(form, fields) {
  const values = {};
  for (const field of fields) {
    const input = form.elements[field.name];
    if (field.type === 'checkbox') values[field.name] = input.checked;
    else if (field.type === 'number') values[field.name] = input.value === '' ? null : Number(input.value);
    else values[field.name] = input.value;
  }
  return values;
}

/**
 * A dialog with a form. `onSubmit(values)` runs on submit; if it throws, the error is shown
 * and the dialog stays open. Resolves with onSubmit's result, or undefined when cancelled.
 */
export function formDialog({ title, fields = [], message, submitLabel, danger = false, testid, onSubmit, wide }) {
  return openDialog({
    title, testid, wide,
    render(close) {
      const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'dialog-error', hidden: true });
      const submit = h('button', { type: 'submit', class: danger ? 'button danger' : 'button primary',
        'data-testid': 'dialog-submit' }, submitLabel || t('action.save'));
      const form = h('form', { class: 'form', novalidate: true },
        message ? h('p', { class: 'dialog-message' }, message) : null,
        fields.map((field) => h('label', { class: field.type === 'checkbox' ? 'field field-check' : 'field',
          for: `field-${field.name}` },
          h('span', {}, field.label), fieldInput(field),
          field.help ? h('small', { class: 'help' }, field.help) : null)),
        error,
        h('footer', { class: 'dialog-actions' },
          h('button', { type: 'button', class: 'button', 'data-testid': 'dialog-cancel',
            onclick: () => close(undefined) }, t('action.cancel')),
          submit));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        submit.disabled = true;
        try {
          const result = await onSubmit(readValues(form, fields));
          close(result === undefined ? true : result);
        } catch (failure) {
          replace(error, errorText(failure));
          error.hidden = false;
        } finally {
          submit.disabled = false;
        }
      });
      return form;
    },
  });
}

/** Ask for confirmation; resolves with whatever `onConfirm` returned, or undefined. */
export function confirmDialog({ title, message, confirmLabel, fields = [], onConfirm }) {
  return formDialog({ title, message, fields, submitLabel: confirmLabel || t('action.confirm'),
    danger: true, testid: 'confirm-dialog', onSubmit: onConfirm });
}

/** Parse JSON typed by a user; throws a translated error that names the field. */
export function parseJsonField(text, label) {
  try {
    return parseJson(text);
  } catch (error) {
    throw new Error(t('error.invalidJson', { field: label, detail: error.message }));
  }
}

/**
 * Previous/next buttons around "Page x of y · n total" for a list paged by offset, `size` rows a
 * page; `move(offset)` is called with the offset to show. `show(offset, total, exact)` redraws
 * them; a count that is not exact (a bound, `maxCount`) reads "more than" and keeps Next enabled.
 */
export function offsetPager(size, move, testid = 'page') {
  let at = 0;
  const info = h('span', { 'data-testid': `${testid}-info` });
  const prev = h('button', { type: 'button', class: 'button small', 'data-testid': `${testid}-prev`,
    onclick: () => move(Math.max(0, at - size)) }, `‹ ${t('pager.prev')}`);
  const next = h('button', { type: 'button', class: 'button small', 'data-testid': `${testid}-next`,
    onclick: () => move(at + size) }, `${t('pager.next')} ›`);
  const element = h('div', { class: 'pager' }, prev, info, next);
  function show(offset, total, exact = true) {
    at = offset;
    info.textContent = t(exact ? 'pager.info' : 'pager.infoAtLeast',
      { page: Math.floor(offset / size) + 1, pages: Math.max(1, Math.ceil(total / size)), total });
    prev.disabled = offset === 0;
    next.disabled = exact && offset + size >= total;
  }
  return { element, show };
}
