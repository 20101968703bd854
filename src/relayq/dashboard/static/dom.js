// Tiny DOM and formatting helpers. Everything is built with createElement/textContent,
// never innerHTML, so message payloads and error texts can never inject markup.
import { getLang } from './i18n.js';

/** Create an element: h('button', {class: 'x', onclick: fn, 'data-testid': 'y'}, 'text', child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = Boolean(value);
    else if (key === 'style' && typeof value === 'object') Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Build a <select> from [value, label] pairs. */
export function select(attrs, options, selected) {
  return h('select', attrs, options.map(([value, label]) =>
    h('option', { value, selected: String(value) === String(selected ?? '') }, label)));
}

/** Unix seconds (or an ISO string) to a local date-time string in the UI language.
 * In English, the browser's own English (en-US: month first) when it has one, so the tables read
 * dates the way the browser's date inputs of the filters do; else en-GB. */
export function fmtTime(value) {
  if (value === null || value === undefined || value === '' || value === 0) return '—';
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(timeLocale(), { hour12: false });
}

function timeLocale() {
  if (getLang() === 'es') return 'es-ES';
  const browser = navigator.language || '';
  return browser.toLowerCase().startsWith('en') ? browser : 'en-GB';
}

/** Whether a queued message still waits for its `available_at` (delayed delivery, retry backoff). */
export function isWaiting(message) {
  return (message.available_at ?? 0) * 1000 > Date.now();
}

/** A <time> element for a timestamp (in a narrow table column, the time goes under the date). */
export function timeCell(value) {
  return h('time', {}, fmtTime(value));
}

/** A duration in milliseconds, compact: 850 ms, 12.4 s, 3 min 5 s. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.floor((ms % 60_000) / 1000)} s`;
}

export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A renderer of possibly long text in a span of class `cls`, whole in its tooltip ('—' when empty). */
function longText(cls) {
  return (text) => (text === null || text === undefined || text === '' ? '—' : h('span', { class: cls, title: text }, text));
}

/** Text that may be long and unbroken (a type, a consumer id): one line, cut with an ellipsis. */
export const clipped = longText('clip');

/** Long free text (an error): wrapped anywhere, at most three lines. */
export const clamped = longText('clamp');

/** One-line JSON preview of a payload, cut to `max` characters. */
export function preview(payload, max = 80) {
  const text = JSON.stringify(payload) ?? 'null';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * A datetime-local input value (local time, shown to the second) to an ISO-8601 UTC string, or
 * '' when empty: the start of that second, or with `endOfSecond` its last microsecond (the
 * server's precision), so that an inclusive "to" bound keeps what was stored at 12:00:05.6
 * when the screen says 12:00:05.
 */
export function localInputToIso(value, { endOfSecond = false } = {}) {
  const ms = value ? new Date(value).getTime() : NaN;
  if (Number.isNaN(ms)) return '';
  const start = new Date(Math.floor(ms / 1000) * 1000).toISOString(); // …:05.000Z
  return endOfSecond ? start.replace(/\.000Z$/, '.999999Z') : start;
}

/**
 * Coalesce calls to an async `fn`: it runs at most once per `waitMs`, never twice at the same
 * time, and a call that arrives while it runs triggers one more run afterwards, so the last
 * change is always seen. Used for SSE-driven refetches. `waitMs` may be a function, read at
 * each call, for views whose refetch costs more as they grow.
 */
export function coalesce(fn, waitMs) {
  const interval = typeof waitMs === 'function' ? waitMs : () => waitMs;
  let timer = null;
  let running = false;
  let pending = false;
  let last = 0;
  async function run() {
    timer = null;
    if (running) {
      pending = true;
      return;
    }
    running = true;
    last = Date.now();
    try {
      await fn();
    } catch (error) {
      console.error(error);
    } finally {
      running = false;
      if (pending) {
        pending = false;
        schedule();
      }
    }
  }
  function schedule() {
    if (timer) return;
    timer = setTimeout(run, Math.max(0, last + interval() - Date.now()));
  }
  schedule.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return schedule;
}
