// Dashboard: GET /v1/control/dashboard as charts (the time series,
// violations by policy with their severities, violations by agent) for a
// window of 24h, 7d or 30d, and a drill-down from an agent to its
// violations feed.
import { h, clear, field, when, statusBadge } from './dom.js';
import { get, explain } from './api.js';
import { lineChart, barChart } from './chart.js';

const SERIES = [
  ['evaluations', 'Evaluations', 's0'],
  ['blocked', 'Blocked', 's1'],
  ['pending_review', 'Pending', 's2'],
  ['approved', 'Approved', 's3'],
  ['denied', 'Denied', 's4'],
];
const SEVERITIES = ['critical', 'high', 'medium', 'low'];

export function render(root) {
  const win = h('select', {}, ['24h', '7d', '30d'].map((w) => h('option', { value: w }, w)));
  win.value = sessionStorage.getItem('gatehouse.window') || '7d';
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  win.addEventListener('change', () => {
    sessionStorage.setItem('gatehouse.window', win.value);
    load();
  });
  clear(root,
    h('div', { class: 'pagehead' }, h('h1', {}, 'Dashboard'),
      h('div', { class: 'row' }, field('Window', win), h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh'))),
    body);

  // Only the latest request may draw: an answer for a window the user has
  // already changed is dropped.
  let seq = 0;
  async function load() {
    seq += 1;
    const mine = seq;
    try {
      const d = await get(`/v1/control/dashboard?window=${encodeURIComponent(win.value)}`);
      if (mine === seq) show(d);
    } catch (err) {
      if (mine === seq) clear(body, explain(err));
    }
  }

  function show(d) {
    const t = d.totals;
    // The two bar charts sit side by side where the grid has room for two.
    const half = window.innerWidth >= 720 ? 0.5 : 1;
    const labels = d.time_series.map((b) => bucketLabel(b.bucket, d.bucket));
    clear(body,
      h('ul', { class: 'totals', 'aria-label': 'Totals' },
        [['Evaluations', t.evaluations], ['Executed', t.executed], ['Blocked', t.blocked], ['Pending review', t.pending_review], ['Approved', t.approved], ['Denied', t.denied]]
          .map(([k, v]) => h('li', { class: 'total' }, h('span', { class: 'n' }, String(v)), h('span', { class: 'k' }, k)))),
      h('section', { class: 'card', 'aria-labelledby': 'ts-title' },
        h('h2', { id: 'ts-title' }, `Decisions per ${d.bucket} (${d.window})`),
        lineChart(labels, SERIES.map(([k, name, cls]) => ({ name, cls, values: d.time_series.map((b) => b[k]) })), `Decisions per ${d.bucket} over ${d.window}`),
        dataTable(['Bucket', ...SERIES.map((s) => s[1])], d.time_series.map((b, i) => [labels[i], ...SERIES.map(([k]) => b[k])]), 'Time series as a table')),
      h('div', { class: 'sidebyside' },
        h('section', { class: 'card', 'aria-labelledby': 'pol-title' },
          h('h2', { id: 'pol-title' }, 'Violations by policy'),
          d.violations_by_policy.length === 0 ? h('p', { class: 'muted' }, 'No violations in this window.') : [
            barChart(d.violations_by_policy.map((p) => ({
              label: p.policy,
              parts: SEVERITIES.map((s) => ({ name: s, cls: `sev-${s}`, value: (p.severity_breakdown || {})[s] || 0 })),
            })), 'Violations by policy, by severity', half),
            h('p', { class: 'legend' }, SEVERITIES.map((s) => h('span', { class: 'key' }, h('span', { class: `swatch sev-${s}` }), s))),
            dataTable(['Policy', 'Count', ...SEVERITIES], d.violations_by_policy.map((p) => [p.policy, p.count, ...SEVERITIES.map((s) => (p.severity_breakdown || {})[s] || 0)]), 'Violations by policy as a table'),
          ]),
        h('section', { class: 'card', 'aria-labelledby': 'agent-title' },
          h('h2', { id: 'agent-title' }, 'Violations by agent'),
          d.violations_by_agent.length === 0 ? h('p', { class: 'muted' }, 'No agent had violations in this window.') : [
            barChart(d.violations_by_agent.map((a) => ({ label: a.agent_id || '(no agent)', parts: [{ name: 'violations', cls: 's1', value: a.count }] })), 'Violations by agent', half),
            h('ul', { class: 'drill', 'aria-label': 'Agents' }, d.violations_by_agent.map((a) => h('li', {},
              a.agent_id ? h('a', { href: `#/dashboard/agents/${encodeURIComponent(a.agent_id)}` }, `Violations of ${a.agent_id}`) : '(no agent)',
              ` — ${a.count}`))),
          ])),
      h('p', { class: 'muted small' }, `Store: ${d.backend}.`));
  }

  load();
}

// renderAgent is the drill-down: one agent's violations feed.
export function renderAgent(root, agent) {
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  clear(root,
    h('p', {}, h('a', { href: '#/dashboard' }, '← Dashboard')),
    h('h1', {}, `Violations of ${agent}`),
    body);
  get(`/v1/control/agents/${encodeURIComponent(agent)}/violations?limit=100`).then((r) => {
    clear(body,
      h('p', { class: 'muted' }, `${r.total} evaluations with at least one hit, newest first.`),
      r.violations.length === 0 ? h('p', {}, 'No violations.') : h('div', { class: 'scroll' }, h('table', {},
        h('caption', { class: 'sr' }, `Violations of ${agent}`),
        h('thead', {}, h('tr', {}, ['When', 'Action', 'Event', 'Policy', 'Severity', 'Reason', 'Risk', 'Audit'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, r.violations.map((v) => h('tr', {},
          h('td', {}, when(v.timestamp)),
          h('th', { scope: 'row' }, h('a', { href: `#/actions/${encodeURIComponent(v.action_id)}` }, v.action)),
          h('td', {}, statusBadge(v.event.replace('action_', '').replace('executed', 'allowed'))),
          h('td', {}, v.triggered_policy || '—'),
          h('td', {}, v.severity || '—'),
          h('td', { class: 'reason' }, v.reason || '—'),
          h('td', {}, String(v.risk_score)),
          h('td', {}, h('code', { class: 'hash', title: v.audit_hash }, `#${v.audit_chain_index}`))))))));
  }).catch((err) => clear(body, explain(err)));
}

function bucketLabel(ts, bucket) {
  const d = new Date(ts);
  if (isNaN(d)) return ts;
  return bucket === 'hour'
    ? `${String(d.getHours()).padStart(2, '0')}:00`
    : `${d.getMonth() + 1}/${d.getDate()}`;
}

function dataTable(head, rows, summary) {
  return h('details', {}, h('summary', {}, summary), h('div', { class: 'scroll' }, h('table', { class: 'small' },
    h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, String(c)))))))));
}
