// The public API, called with the signed-in key. The key lives in
// sessionStorage only: it is gone when the tab closes, never written to
// localStorage, a cookie or a URL, and never logged.
import { h } from './dom.js';

const KEY = 'gatehouse.apiKey';

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(k) {
  sessionStorage.setItem(KEY, k);
}

export function dropKey() {
  sessionStorage.removeItem(KEY);
}

// ApiError is a non-2xx answer: the contract's envelope fields plus status.
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || this.body.error || '';
  }
}

// onUnauthorized is called with the reason when the server answers 401;
// the app returns to sign-in.
let unauthorized = () => {};
export function onUnauthorized(fn) {
  unauthorized = fn;
}

// call sends one request. body is JSON-encoded unless raw is given (text
// sent with contentType as is). It resolves to the parsed JSON (or text)
// and rejects with ApiError.
export async function call(method, path, { body, raw, contentType, signal, key } = {}) {
  const headers = { Accept: 'application/json' };
  const k = key || getKey();
  if (k) headers.Authorization = `Bearer ${k}`;
  let payload;
  if (raw !== undefined) {
    payload = raw;
    headers['Content-Type'] = contentType || 'application/json';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, { method, headers, body: payload, signal, cache: 'no-store', credentials: 'omit' });
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (res.ok) return data;
  const err = new ApiError(res.status, typeof data === 'object' ? data : { message: String(data).slice(0, 200) });
  if (res.status === 401 && !key) unauthorized(err.message);
  throw err;
}

export const get = (path, opts) => call('GET', path, opts);
export const post = (path, body, opts) => call('POST', path, { ...opts, body });

const TIERS = { free: 'Free', starter: 'Starter', pro: 'Pro', enterprise: 'Enterprise' };
const FEATURES = {
  governance_dashboard: 'The governance dashboard',
  agent_scoped_policies: 'Agent-scoped policies (one agent\'s own copy of a policy)',
  draft_policies: 'Custom policies',
};

// explain renders an API error for people: tier limits as an explanation
// of what the tier allows and what would, everything else as the server's
// message with its code.
export function explain(err) {
  if (!(err instanceof ApiError)) {
    return h('div', { class: 'error', role: 'alert' }, `Could not reach Gatehouse: ${err.message}`);
  }
  const b = err.body;
  if (err.code === 'novyx_ram.v1.tier.feature_required') {
    const what = FEATURES[b.feature] || `The feature '${b.feature}'`;
    return h('div', { class: 'notice', role: 'alert' },
      h('strong', {}, 'Not available on your plan. '),
      `${what}: available from the ${TIERS[b.required_tier] || b.required_tier} tier up; this tenant is on ${TIERS[b.current_tier] || b.current_tier}. `,
      'An operator can change the tier with the admin API (PATCH /v1/admin/tenants/{id}).',
      h('p', { class: 'muted' }, `Server: ${b.message}`));
  }
  if (err.code === 'novyx_ram.v1.tier.limit_exceeded') {
    return h('div', { class: 'notice', role: 'alert' },
      h('strong', {}, 'Policy limit reached. '),
      `This tier allows ${b.limit} enabled custom policies and ${b.current} are enabled. Disable one, or ask an operator for a higher tier.`,
      h('p', { class: 'muted' }, `Server: ${b.message}`));
  }
  if (err.status === 429) {
    return h('div', { class: 'notice', role: 'alert' }, `Rate limited: ${b.message}`);
  }
  return h('div', { class: 'error', role: 'alert' }, b.message || err.message, err.code ? h('span', { class: 'code' }, ` (${err.code})`) : null);
}

// fieldErrors splits a validation message ("rules[0].match: reason; name:
// reason") into [{field, reason}].
export function fieldErrors(msg) {
  return String(msg || '').split('; ').map((part) => {
    const m = /^([A-Za-z_][\w.[\]]*): (.*)$/s.exec(part);
    return m ? { field: m[1], reason: m[2] } : { field: '', reason: part };
  });
}
