// decisionView renders a decision shaped as POST /v1/actions returns it:
// status, triggered policy, reason, violations, warnings, risk score, and
// the response itself.
import { h, statusBadge, pretty } from './dom.js';

export function decisionView(d, label) {
  const r = d.policy_result || {};
  const shadow = r.shadow_status ? h('p', {}, 'Shadow mode: would have been ', statusBadge(r.shadow_status)) : null;
  return h('div', { class: 'decision', 'aria-label': label },
    h('p', { class: 'decision-status' }, statusBadge(d.status), ' ', h('span', { class: 'message' }, d.message)),
    shadow,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Triggered policy'), h('dd', {}, r.triggered_policy || 'none'),
      h('dt', {}, 'Severity'), h('dd', {}, r.severity || '—'),
      h('dt', {}, 'Reason'), h('dd', { class: 'reason' }, r.reason || '—'),
      h('dt', {}, 'Risk score'), h('dd', {}, r.risk_score === undefined ? '—' : String(r.risk_score)),
      h('dt', {}, 'Policies evaluated'), h('dd', {}, (r.policies_evaluated || []).join(', ') || '—')),
    hits('Violations', r.violations),
    hits('Warnings', r.warnings),
    h('details', {}, h('summary', {}, 'Response JSON'), h('pre', { class: 'code' }, pretty(d))));
}

function hits(title, list) {
  if (!list || list.length === 0) return h('p', { class: 'muted' }, `${title}: none`);
  return h('div', { class: 'scroll' }, h('table', { class: 'hits' },
    h('caption', {}, `${title} (${list.length})`),
    h('thead', {}, h('tr', {}, ['Policy', 'Scope', 'Rule', 'Severity', 'Outcome', 'Reason', 'Match', 'Confidence'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, list.map((v) => h('tr', {},
      h('td', {}, v.policy), h('td', {}, v.scope), h('td', {}, String(v.rule)), h('td', {}, v.severity),
      h('td', {}, v.on_violation), h('td', {}, v.reason), h('td', {}, h('code', {}, v.match)), h('td', {}, String(v.confidence)))))));
}
