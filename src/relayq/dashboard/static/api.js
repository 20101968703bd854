// REST client for the Relay API. URLs are resolved against this module's own URL
// (…/dashboard/api.js → …/api/), so the dashboard works under any host or path prefix.
const API_BASE = new URL('../api/', import.meta.url);
const KEY_STORAGE = 'relay.apiKey';
// `maxCount` of the listings and the activity log: a filter matching a million messages or
// entries must not count them on every refresh ("more than 10000" beyond).
export const MAX_COUNT = 10000;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.body = body;
  }
}

// A view refreshes one request at a time (dom.js coalesce), so a GET that never answers (a
// stalled proxy, a paused pgbouncer) stopped that view's refreshes for good. A GET now gives up
// after this long, and the next refresh asks again: well past what a slow answer may take (a
// listing's page and its count, each bounded by the server's 30 s statement timeout). Writes
// are not cut off: a purge of a big queue takes its time, and leaving would not stop it.
// `relay.getTimeoutMs` in localStorage overrides it (the browser tests use a short one).
const GET_TIMEOUT_MS = Number(localStorage.getItem('relay.getTimeoutMs')) || 90_000;

/** Raised for a GET that did not answer within GET_TIMEOUT_MS (errorText shows it translated). */
export class RequestTimeout extends ApiError {
  constructor() {
    super(0, { message: `No answer within ${GET_TIMEOUT_MS / 1000} s`, code: 'TIMEOUT' });
  }
}

/** An AbortSignal that aborts with a TimeoutError after `ms` (AbortSignal.timeout needs Safari 16). */
function timeoutSignal(ms) {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), ms);
  return controller.signal;
}

let unauthorizedHandler = () => {};

/** Register what to do when the server answers 401 (the app shows the key dialog). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export function getApiKey() {
  return localStorage.getItem(KEY_STORAGE) || '';
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** Absolute URL of an API path with query parameters; empty values are left out. */
export function apiUrl(path, query = {}) {
  const url = new URL(path.replace(/^\//, ''), API_BASE);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, String(value));
  }
  return url;
}

function headers(extra = {}) {
  const key = getApiKey();
  return key ? { 'X-API-KEY': key, ...extra } : extra;
}

async function send(method, path, { query, body, form, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (form) init.body = form;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  // An abort is the timeout's, whatever error the browser reports for it (Safari before 15.4
  // ignores the abort's reason).
  const response = await fetch(apiUrl(path, query), init).catch((error) => {
    throw signal && signal.aborted ? new RequestTimeout() : error;
  });
  if (response.status === 401) {
    const payload = await response.json().catch(() => null);
    const error = new ApiError(401, payload);
    unauthorizedHandler(error);
    throw error;
  }
  return response;
}

/**
 * JSON.parse that keeps integers beyond 2^53 exact where the browser can (JSON.rawJSON:
 * Chromium 114+, Firefox 135+): such a number stays its source text, which JSON.stringify writes
 * back verbatim. Plain JSON.parse rounded them, so an edit saved unchanged, or an import, stored
 * 12345678901234567890 as 12345678901234567000. Elsewhere they still round.
 */
export function parseJson(text) {
  // A reviver makes parsing several times slower: only for texts that may hold such a number
  // (16 digits in a row; 2^53 has 16).
  if (typeof JSON.rawJSON !== 'function' || !/\d{16}/.test(text)) return JSON.parse(text);
  return JSON.parse(text, (key, value, context) => (typeof value === 'number' && !Number.isSafeInteger(value)
    && context && /^-?\d+$/.test(context.source) ? JSON.rawJSON(context.source) : value));
}

async function bodyOf(response) {
  return parseJson(await response.text());
}

/** Send a request and return the parsed JSON body; throws ApiError on any non-2xx. */
export async function request(method, path, { timeoutMs, ...options } = {}) {
  const signal = timeoutMs ? timeoutSignal(timeoutMs) : undefined;
  const response = await send(method, path, { ...options, signal });
  // The timeout covers the body too: a body cut off by it is a timeout, not an empty answer.
  const payload = await bodyOf(response).catch(() => {
    if (signal && signal.aborted) throw new RequestTimeout();
    return null;
  });
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

export const api = {
  get: (path, query) => request('GET', path, { query, timeoutMs: GET_TIMEOUT_MS }),
  post: (path, body, query) => request('POST', path, { body, query }),
  put: (path, body, query) => request('PUT', path, { body, query }),
  patch: (path, body) => request('PATCH', path, { body }),
  del: (path, query) => request('DELETE', path, { query }),
  upload: (path, form) => request('POST', path, { form }),
};

/** Fetch a file (with the API key header) and hand it to the browser as a download. */
export async function download(path, query, fallbackName) {
  const response = await send('GET', path, { query });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const disposition = response.headers.get('Content-Disposition') || '';
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const blob = await response.blob();
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
