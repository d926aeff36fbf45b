// Actions: the action list with status filters, and one action's explain
// view — its decision, its approval, its entries of the audit chain with
// their hashes, and the tenant's chain verification.
import { h, clear, field, when, statusBadge, pretty } from './dom.js';
import { get, explain } from './api.js';

const STATUSES = ['', 'allowed', 'blocked', 'pending_review', 'approved', 'denied'];
const PAGE = 50;

export function render(root) {
  const status = h('select', {}, STATUSES.map((s) => h('option', { value: s }, s ? s.replace('_', ' ') : 'all')));
  status.value = sessionStorage.getItem('gatehouse.actionStatus') || '';
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  let offset = 0;
  status.addEventListener('change', () => {
    sessionStorage.setItem('gatehouse.actionStatus', status.value);
    offset = 0;
    load();
  });
  clear(root,
    h('div', { class: 'pagehead' }, h('h1', {}, 'Actions'),
      h('div', { class: 'row' }, field('Status', status), h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh'))),
    body);

  // Only the latest request may draw (see dashboard.js).
  let seq = 0;
  async function load() {
    seq += 1;
    const mine = seq;
    const qs = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (status.value) qs.set('status', status.value);
    try {
      const r = await get(`/v1/actions?${qs}`);
      if (mine !== seq) return;
      clear(body,
        h('p', { class: 'muted' }, `${r.total} ${status.value ? status.value.replace('_', ' ') : ''} actions, newest first.`),
        r.actions.length === 0 ? h('p', {}, 'No actions.') : h('div', { class: 'scroll' }, h('table', {},
          h('caption', { class: 'sr' }, 'Actions'),
          h('thead', {}, h('tr', {}, ['Submitted', 'Action', 'Agent', 'Status', 'Triggered policy', 'Risk', ''].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, r.actions.map((a) => h('tr', {},
            h('td', {}, when(a.created_at)),
            h('th', { scope: 'row' }, a.action, h('div', { class: 'muted small' }, a.action_id)),
            h('td', {}, a.agent_id || '—'),
            h('td', {}, statusBadge(a.status)),
            h('td', {}, (a.policy_result && a.policy_result.triggered_policy) || '—'),
            h('td', {}, a.policy_result ? String(a.policy_result.risk_score) : '—'),
            h('td', {}, h('a', { href: `#/actions/${encodeURIComponent(a.action_id)}`, 'aria-label': `Explain ${a.action} (${a.action_id})` }, 'Explain'))))))),
        h('div', { class: 'row' },
          offset > 0 ? h('button', { type: 'button', class: 'secondary', onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, 'Newer') : null,
          offset + PAGE < r.total ? h('button', { type: 'button', class: 'secondary', onclick: () => { offset += PAGE; load(); } }, 'Older') : null));
    } catch (err) {
      if (mine === seq) clear(body, explain(err));
    }
  }
  load();
}

export function renderExplain(root, id) {
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  clear(root, h('p', {}, h('a', { href: '#/actions' }, '← Actions')), h('h1', {}, 'Explain action'), body);
  Promise.all([get(`/v1/actions/${encodeURIComponent(id)}/explain`), get(`/v1/actions/${encodeURIComponent(id)}`), get('/v1/audit/verify')])
    .then(([x, a, verify]) => {
      const r = x.policy_result || {};
      const ap = x.approval;
      clear(body,
        h('section', { class: 'card', 'aria-labelledby': 'sum-title' },
          h('h2', { id: 'sum-title' }, x.action, ' ', statusBadge(a.status)),
          h('p', { class: 'summary' }, x.summary),
          h('dl', { class: 'facts' },
            h('dt', {}, 'Action ID'), h('dd', {}, h('code', {}, x.action_id)),
            h('dt', {}, 'Agent'), h('dd', {}, x.agent_id || '—'),
            h('dt', {}, 'Submitted'), h('dd', {}, when(x.submitted_at)),
            h('dt', {}, 'Triggered policy'), h('dd', {}, r.triggered_policy || 'none'),
            h('dt', {}, 'Reason'), h('dd', { class: 'reason' }, r.reason || '—'),
            h('dt', {}, 'Risk score'), h('dd', {}, r.risk_score === undefined ? '—' : String(r.risk_score)))),
        h('section', { class: 'card', 'aria-labelledby': 'ap-title' },
          h('h2', { id: 'ap-title' }, 'Approval'),
          ap ? h('dl', { class: 'facts' },
            h('dt', {}, 'Status'), h('dd', {}, statusBadge(ap.status)),
            h('dt', {}, 'Mode'), h('dd', {}, ap.mode),
            h('dt', {}, 'Approver'), h('dd', {}, ap.approver_id || '—'),
            h('dt', {}, 'Decision reason'), h('dd', {}, ap.reason || '—'),
            h('dt', {}, 'Decided'), h('dd', {}, when(ap.decided_at)),
            h('dt', {}, 'Votes'), h('dd', {}, (ap.votes || []).map((v) => `${v.approver_id}: ${v.decision}`).join(', ') || '—'))
            : h('p', { class: 'muted' }, 'This action was never held for review.')),
        h('section', { class: 'card', 'aria-labelledby': 'chain-title' },
          h('h2', { id: 'chain-title' }, 'Audit chain'),
          verify.valid
            ? h('p', { class: 'ok', role: 'status' }, `Chain verified: all ${verify.entries} entries of this tenant recompute to their hashes (checked ${verify.timestamp}).`)
            : h('p', { class: 'error', role: 'alert' }, `Chain verification FAILED at sequence ${verify.first_bad_sequence} of ${verify.entries} entries.`),
          h('div', { class: 'scroll' }, h('table', { class: 'trail' },
            h('caption', {}, 'This action\'s entries'),
            h('thead', {}, h('tr', {}, ['#', 'Time', 'Event', 'Entry hash', 'Previous hash'].map((c) => h('th', { scope: 'col' }, c)))),
            h('tbody', {}, x.audit_trail.map((e) => h('tr', {},
              h('td', {}, String(e.sequence_number)),
              h('td', {}, when(e.timestamp)),
              h('td', {}, e.event),
              h('td', {}, h('code', { class: 'hash' }, e.entry_hash)),
              h('td', {}, h('code', { class: 'hash' }, e.prev_hash || '—')))))))),
        h('details', { class: 'card' }, h('summary', {}, 'Explain response JSON'), h('pre', { class: 'code' }, pretty(x))));
    })
    .catch((err) => clear(body, explain(err)));
}
