// Entry point: theme and language, the header, the API-key prompt, and a hash router
// (#/queues, #/queue/<name>/<tab>) so the server serves one static page.
import { api, getApiKey, onUnauthorized, setApiKey } from './api.js';
import { h, replace, select } from './dom.js';
import { getLang, LANGUAGES, setLang, t } from './i18n.js';
import { connect, disconnect, isLiveEnabled, liveStatus, onStatusChange, setLiveEnabled } from './live.js';
import { renderQueuePage, TABS } from './pages/queue.js';
import { renderQueuesPage } from './pages/queues.js';
import { errorText, formDialog, isMissingKey } from './ui.js';

const THEME_STORAGE = 'relay.theme';
let cleanupPage = () => {};

// --- theme -----------------------------------------------------------------------------------
function currentTheme() {
  const stored = localStorage.getItem(THEME_STORAGE);
  if (stored) return stored;
  return window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
}

function toggleTheme() {
  const next = currentTheme() === 'dark' ? 'light' : 'dark';
  localStorage.setItem(THEME_STORAGE, next);
  applyTheme(next);
  renderHeader();
}

// --- API key ---------------------------------------------------------------------------------
let keyDialogOpen = false;
// keyNeeded: the server answered 401 and no working key has been entered since.
// keyDeclined: the user cancelled the prompt; then 401s no longer prompt again (they would on
// every refetch), the page says a key is needed instead, and the event stream is closed.
let keyNeeded = false;
let keyDeclined = false;

/** Ask for the API key; verifies it against the server before keeping it. */
async function askForKey(reason) {
  if (keyDialogOpen) return;
  keyDialogOpen = true;
  const saved = await formDialog({
    title: t('auth.title'), testid: 'auth-dialog', submitLabel: t('auth.submit'),
    message: reason,
    fields: [{ name: 'key', label: t('auth.key'), type: 'password', value: getApiKey(), required: true }],
    async onSubmit({ key }) {
      const previous = getApiKey();
      setApiKey(key.trim());
      try {
        await api.get('queues');
      } catch (error) {
        setApiKey(previous);
        throw error;
      }
      return true;
    },
  });
  keyDialogOpen = false;
  if (saved) {
    keyNeeded = false;
    keyDeclined = false;
    connect(); // the SSE URL carries the key
    route();
  } else if (keyNeeded) {
    keyDeclined = true;
    disconnect(); // without a key every event would only end in another 401
    renderHeader();
  }
}

onUnauthorized((error) => {
  const first = !keyNeeded;
  keyNeeded = true;
  if (first) renderHeader();
  if (!keyDeclined) askForKey(isMissingKey(error) ? t('auth.required') : t('auth.invalid'));
});

/** The persistent notice shown after the key prompt was cancelled. */
function renderAuthBanner() {
  let banner = document.getElementById('auth-banner');
  if (!banner) {
    banner = h('div', { id: 'auth-banner', class: 'auth-banner', role: 'alert', 'data-testid': 'auth-needed' });
    document.getElementById('app').before(banner);
  }
  banner.hidden = !keyDeclined;
  replace(banner, h('strong', {}, t('auth.needed')), ' ', h('span', {}, t('auth.neededHelp')),
    h('button', { type: 'button', class: 'button small primary', 'data-testid': 'auth-enter',
      onclick: () => askForKey(t('auth.required')) }, t('auth.enter')));
}

// --- header ----------------------------------------------------------------------------------
const STATUS_CLASS = { live: 'ok', connecting: 'pending', polling: 'pending', off: 'off' };

function liveIndicator() {
  if (keyNeeded) {
    return h('span', { class: 'live-dot bad', 'data-testid': 'live-status', 'data-status': 'key-needed',
      title: t('auth.needed') }, t('auth.needed'));
  }
  const status = liveStatus();
  return h('span', { class: `live-dot ${STATUS_CLASS[status]}`, 'data-testid': 'live-status', 'data-status': status,
    title: t(`live.${status}`) }, t(`live.${status}`));
}

function renderHeader() {
  renderAuthBanner();
  const header = document.getElementById('app-header');
  const onQueues = !location.hash.startsWith('#/queue/');
  replace(header,
    h('a', { href: '#/queues', class: 'brand', 'data-testid': 'brand' }, h('span', { class: 'logo' }, '◆'), 'Relay'),
    h('nav', { class: 'main-nav' },
      h('a', { href: '#/queues', class: onQueues ? 'active' : '', 'data-testid': 'nav-queues' }, t('queues.title'))),
    h('div', { class: 'header-tools' },
      h('label', { class: 'switch', title: t('live.toggle') },
        h('input', { type: 'checkbox', checked: isLiveEnabled(), 'data-testid': 'live-toggle',
          onchange: (event) => setLiveEnabled(event.target.checked) }),
        h('span', {}, t('live.toggle'))),
      liveIndicator(),
      select({ 'data-testid': 'lang-select', 'aria-label': t('header.language'),
        onchange: (event) => { setLang(event.target.value); renderHeader(); route(); } },
      LANGUAGES.map((code) => [code, t(`lang.${code}`)]), getLang()),
      h('button', { type: 'button', class: 'icon-button', 'data-testid': 'theme-toggle',
        title: t('header.theme'), 'aria-label': t('header.theme'), onclick: toggleTheme },
      currentTheme() === 'dark' ? '☀' : '☾'),
      h('button', { type: 'button', class: 'button small', 'data-testid': 'api-key-button',
        onclick: () => askForKey('') }, t('auth.title'))));
}

// --- router ----------------------------------------------------------------------------------
function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'queue' && parts[1]) {
    return { page: 'queue', name: parts[1], tab: TABS.includes(parts[2]) ? parts[2] : 'main' };
  }
  return { page: 'queues' };
}

function route() {
  cleanupPage();
  const root = document.getElementById('app');
  const target = parseRoute();
  document.title = target.page === 'queue' ? `${target.name} · Relay` : `${t('queues.title')} · Relay`;
  renderHeader();
  try {
    cleanupPage = target.page === 'queue' ? renderQueuePage(root, target) : renderQueuesPage(root);
  } catch (error) {
    cleanupPage = () => {};
    replace(root, h('p', { class: 'form-error' }, errorText(error)));
  }
}

applyTheme(currentTheme());
document.documentElement.lang = getLang();
onStatusChange(() => {
  const dot = document.querySelector('[data-testid="live-status"]');
  if (dot) dot.replaceWith(liveIndicator());
});
window.addEventListener('hashchange', route);
if (!location.hash) history.replaceState(null, '', '#/queues');
connect();
route();
