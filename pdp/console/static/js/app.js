// The console's shell: sign-in, navigation and the hash router. Each page
// module exports render(root, params) and may return a function that stops
// its timers when the page is left.
import { h, clear, field } from './dom.js';
import { getKey, setKey, dropKey, get, onUnauthorized, ApiError } from './api.js';
import * as policies from './policies.js';
import * as playground from './playground.js';
import * as approvals from './approvals.js';
import * as dashboard from './dashboard.js';
import * as actions from './actions.js';

const routes = [
  [/^#\/policies$/, policies.render, 'Policies'],
  [/^#\/playground$/, playground.render, 'Playground'],
  [/^#\/approvals$/, approvals.render, 'Approvals'],
  [/^#\/dashboard$/, dashboard.render, 'Dashboard'],
  [/^#\/dashboard\/agents\/(.+)$/, dashboard.renderAgent, 'Dashboard'],
  [/^#\/actions$/, actions.render, 'Actions'],
  [/^#\/actions\/(.+)$/, actions.renderExplain, 'Actions'],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signout = document.getElementById('signout');
let leave = null;

function signIn(reason) {
  nav.hidden = true;
  signout.hidden = true;
  document.title = 'Sign in · Gatehouse console';
  const input = h('input', { type: 'password', name: 'api_key', autocomplete: 'off', spellcheck: 'false', required: true });
  const status = h('div', { 'aria-live': 'polite' },
    reason ? h('div', { class: 'error', role: 'alert' }, `Signed out: ${reason}`) : null);
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Use a tenant API key (nram_…). It is kept in this tab only and sent as a Bearer token to this server.'),
    field('API key', input),
    h('button', { type: 'submit' }, 'Sign in'),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    try {
      // Any authenticated read proves the key; the policy list is one
      // every tier may read.
      await get('/v1/control/policies', { key });
    } catch (err) {
      const msg = err instanceof ApiError && err.status === 401 ? `${err.message}. Check the key and try again.` : err.message;
      clear(status, h('div', { class: 'error', role: 'alert' }, msg));
      input.focus();
      return;
    }
    input.value = '';
    setKey(key);
    if (!location.hash || location.hash === '#/signin') location.hash = '#/policies';
    else route();
  });
  clear(main, form);
  input.focus();
}

function route() {
  const t = document.getElementById('toast');
  t.classList.remove('show');
  t.textContent = '';
  if (leave) {
    leave();
    leave = null;
  }
  if (!getKey()) {
    signIn(sessionStorage.getItem('gatehouse.signoutReason'));
    sessionStorage.removeItem('gatehouse.signoutReason');
    return;
  }
  nav.hidden = false;
  signout.hidden = false;
  const hash = location.hash || '#/policies';
  for (const [re, render, name] of routes) {
    const m = re.exec(hash);
    if (!m) continue;
    for (const a of nav.querySelectorAll('a')) {
      if (a.textContent === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${name} · Gatehouse console`;
    clear(main);
    leave = render(main, ...m.slice(1).map(decodeURIComponent)) || null;
    return;
  }
  location.hash = '#/policies';
}

onUnauthorized((reason) => {
  dropKey();
  sessionStorage.setItem('gatehouse.signoutReason', reason);
  route();
});

signout.addEventListener('click', () => {
  dropKey();
  route();
});

// After a navigation, focus moves to the new page, so keyboard and screen
// reader users start there rather than at the link they left.
window.addEventListener('hashchange', () => {
  route();
  if (getKey()) main.focus({ preventScroll: false });
});
route();
