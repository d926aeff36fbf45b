// Approvals: the pending queue as GET /v1/approvals orders it (newest
// last), refreshed every second; Approve and Deny per row with an optional
// reason; a refusal is explained by the approval mode's rule and the
// server's message.
import { h, clear, field, age, toast } from './dom.js';
import { get, post, explain, ApiError } from './api.js';

// POLL_MS keeps a new pending action on screen within 2 s of its
// submission (one poll interval plus one request).
const POLL_MS = 1000;

// RULES explain each refusal of POST /v1/approvals/{id}/decision.
const RULES = {
  'novyx_ram.v1.control.approval_too_early': 'Too early: in team mode the person who submitted an action may approve it only 10 minutes after submission (another approver at once; a deny at once). In solo mode the server holds an early approval until 5 s after submission.',
  'novyx_ram.v1.control.confirmation_required': 'Solo mode: this action is destructive (delete, drop, destroy, remove, truncate, rollback, revoke), so approving it needs the confirmation word ROLLBACK.',
  'novyx_ram.v1.control.approver_not_eligible': 'Not eligible: a key bound to an agent never decides that agent\'s actions, and in enterprise mode only keys with an allowed role (and a manager\'s, when required) count. Roles come from the API key.',
  'novyx_ram.v1.control.approval_already_decided': 'Decisions are final: this action was already decided.',
  'novyx_ram.v1.control.approval_not_found': 'This action is not (or no longer) waiting for review.',
  'novyx_ram.v1.control.invalid_decision': 'The decision was not understood.',
};

export function render(root) {
  const approver = h('input', { type: 'text', autocomplete: 'off', placeholder: 'the key\'s owner' });
  const status = h('p', { class: 'muted', 'aria-live': 'polite' }, 'Loading the queue…');
  const problem = h('div', { 'aria-live': 'assertive' });
  const tbody = h('tbody', {});
  const table = h('table', { class: 'queue' },
    h('caption', { class: 'sr' }, 'Pending approvals, oldest first'),
    h('thead', {}, h('tr', {}, ['Action', 'Agent', 'Triggered policy', 'Reason', 'Risk', 'Age', 'Decision'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const rows = new Map(); // approval_id → {tr, ageCell, item, busy}
  const reasons = new Map(); // action_id → policy reason (fetched once)
  let timer = null;
  let stopped = false;

  clear(root,
    h('h1', {}, 'Approvals'),
    h('section', { class: 'card' },
      h('p', { class: 'muted' }, 'Actions held for review, oldest first. The list refreshes itself every second.'),
      h('div', { class: 'row' }, field('Approver label', approver, 'Optional, shown beside the decision; the approver is always the API key\'s owner.')),
      status, problem,
      h('div', { class: 'scroll' }, table)));

  async function poll() {
    if (stopped) return;
    try {
      const r = await get('/v1/approvals?limit=200');
      sync(r.approvals, r.total);
    } catch (err) {
      clear(problem, explain(err));
    } finally {
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    }
  }

  function sync(items, total) {
    const now = Date.now();
    const seen = new Set();
    for (const it of items) {
      seen.add(it.approval_id);
      let row = rows.get(it.approval_id);
      if (!row) {
        row = makeRow(it);
        rows.set(it.approval_id, row);
      }
      row.ageCell.textContent = age(it.submitted_at, now);
      tbody.append(row.tr); // keeps the server's order
    }
    for (const [id, row] of rows) {
      if (!seen.has(id) && !row.busy) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    status.textContent = total === 0 ? 'Nothing is waiting for review.' : `${total} pending ${total === 1 ? 'action' : 'actions'}.`;
  }

  function makeRow(it) {
    const reasonCell = h('td', { class: 'reason' }, '…');
    const ageCell = h('td', {}, '');
    const decisionReason = h('input', { type: 'text', autocomplete: 'off', 'aria-label': `Reason for ${it.action} (${it.action_id})`, placeholder: 'Reason (optional)' });
    const confirm = h('input', { type: 'text', autocomplete: 'off', 'aria-label': `Confirmation for ${it.action} (${it.action_id})`, placeholder: 'ROLLBACK', hidden: true });
    const note = h('div', { class: 'rownote', 'aria-live': 'polite' });
    const approve = h('button', { type: 'button', class: 'small approve' }, 'Approve');
    const deny = h('button', { type: 'button', class: 'small deny' }, 'Deny');
    const row = { item: it, ageCell, busy: false };
    let retryTimer = null;
    const decide = async (decision) => {
      clearTimeout(retryTimer);
      row.busy = true;
      approve.disabled = true;
      deny.disabled = true;
      clear(note, h('span', { class: 'muted' }, decision === 'approve' ? 'Approving…' : 'Denying…'));
      const body = { decision };
      if (decisionReason.value.trim()) body.reason = decisionReason.value.trim();
      if (approver.value.trim()) body.approver_id = approver.value.trim();
      if (confirm.value.trim()) body.confirmation = confirm.value.trim();
      try {
        const r = await post(`/v1/approvals/${encodeURIComponent(it.approval_id)}/decision`, body);
        if (r.status === 'pending_review') {
          clear(note, h('span', { class: 'ok' }, `Vote recorded: ${r.approvals_received} of ${r.min_approvals} approvals.`));
        } else {
          toast(`${it.action} ${r.status}.`);
          clear(note, h('span', { class: 'ok', role: 'status' }, `${r.status === 'approved' ? 'Approved' : 'Denied'}.`));
          setTimeout(() => { row.busy = false; }, 1500);
          return;
        }
      } catch (err) {
        if (err instanceof ApiError && RULES[err.code]) {
          if (err.code === 'novyx_ram.v1.control.confirmation_required') confirm.hidden = false;
          // A decision refused only for being early is sent again once it
          // is due (within a minute), as the reviewer asked for it.
          const wait = Number(err.body.retry_after_seconds) || 0;
          const again = err.code === 'novyx_ram.v1.control.approval_too_early' && wait > 0 && wait <= 60;
          clear(note, h('div', { class: again ? 'notice' : 'error', role: 'alert' }, h('strong', {}, again ? 'Not yet. ' : 'Refused. '), RULES[err.code],
            again ? ` Your decision is sent again in ${wait} s.` : '',
            h('div', { class: 'muted' }, `Server: ${err.message}`)));
          if (again) {
            row.busy = true;
            retryTimer = setTimeout(() => { if (!stopped) decide(decision); }, wait * 1000 + 250);
            return;
          }
        } else {
          clear(note, explain(err));
        }
      }
      row.busy = false;
      approve.disabled = false;
      deny.disabled = false;
    };
    approve.addEventListener('click', () => decide('approve'));
    deny.addEventListener('click', () => decide('deny'));
    approve.setAttribute('aria-label', `Approve ${it.action} (${it.action_id})`);
    deny.setAttribute('aria-label', `Deny ${it.action} (${it.action_id})`);
    row.tr = h('tr', { 'data-id': it.approval_id },
      h('th', { scope: 'row' }, h('a', { href: `#/actions/${encodeURIComponent(it.action_id)}` }, it.action), h('div', { class: 'muted small' }, it.action_id)),
      h('td', {}, it.agent_id || '—'),
      h('td', {}, it.triggered_policy || '—'),
      reasonCell,
      h('td', {}, String(it.risk_score)),
      ageCell,
      h('td', { class: 'decide' }, decisionReason, confirm, h('div', { class: 'row' }, approve, deny), note));
    if (reasons.has(it.action_id)) {
      reasonCell.textContent = reasons.get(it.action_id);
    } else {
      get(`/v1/actions/${encodeURIComponent(it.action_id)}`).then((a) => {
        const reason = (a.policy_result && a.policy_result.reason) || '—';
        reasons.set(it.action_id, reason);
        reasonCell.textContent = reason;
      }).catch(() => { reasonCell.textContent = '—'; });
    }
    return row;
  }

  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
