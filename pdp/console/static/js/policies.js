// Policies: every policy at both scopes (built-ins marked), the effective
// set for one agent, the editor (JSON or YAML, with the API's validation
// errors beside the lines they name), enable/disable, and the Rego each
// policy is enforced with.
import { h, clear, field, when, toast, uid } from './dom.js';
import { get, call, explain, fieldErrors, ApiError } from './api.js';
import { toYAML } from './yaml.js';
import { highlightRego } from './rego.js';

const TEMPLATE = {
  name: 'pii_protection',
  description: 'Warn on PII patterns',
  rules: [{ match: '(email|phone)', context_requires: '(external|public)', severity: 'medium', on_violation: 'warn' }],
};

const q = (agent) => (agent ? `?agent_id=${encodeURIComponent(agent)}` : '');
const path = (name, agent) => `/v1/control/policies/${encodeURIComponent(name)}${q(agent)}`;

export function render(root) {
  const listBox = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading policies…'));
  const effBox = h('div', { 'aria-live': 'polite' });
  const agentsList = h('datalist', { id: uid('agents') });
  const effAgent = h('input', { type: 'text', list: agentsList.id, placeholder: 'billing-bot', autocomplete: 'off' });
  const editor = editorPanel(() => load());
  const regoBox = h('section', { class: 'card', 'aria-labelledby': 'rego-title', hidden: true });

  clear(root,
    h('div', { class: 'pagehead' },
      h('h1', {}, 'Policies'),
      h('button', { type: 'button', onclick: () => editor.open(null) }, 'New policy')),
    editor.el,
    regoBox,
    h('section', { class: 'card', 'aria-labelledby': 'all-title' },
      h('h2', { id: 'all-title' }, 'All policies'),
      h('p', { class: 'muted' }, 'Built-ins always apply. Tenant-wide policies apply to every agent unless the agent has an enabled policy of the same name.'),
      listBox),
    h('section', { class: 'card', 'aria-labelledby': 'eff-title' },
      h('h2', { id: 'eff-title' }, 'Effective set for an agent'),
      h('form', { class: 'row', onsubmit: (ev) => { ev.preventDefault(); effective(effAgent.value.trim(), effBox); } },
        field('Agent', effAgent), agentsList,
        h('button', { type: 'submit' }, 'Show effective set')),
      effBox));

  // Only the latest load may draw (a save and a toggle can overlap).
  let seq = 0;
  async function load() {
    seq += 1;
    const mine = seq;
    try {
      const [base, agents] = await Promise.all([get('/v1/control/policies'), get('/v1/control/agents')]);
      const scoped = await Promise.all(agents.agents.map((a) => get(`/v1/control/policies${q(a.agent_id)}`)));
      if (mine !== seq) return;
      const rows = [...base.policies];
      for (const s of scoped) rows.push(...s.policies.filter((p) => p.scope === 'agent'));
      clear(agentsList, agents.agents.map((a) => h('option', { value: a.agent_id })));
      clear(listBox,
        h('p', { class: 'muted' }, `Mode: ${base.mode}. Approval modes this tier allows: ${base.approval_modes.join(', ')}.`),
        table(rows));
    } catch (err) {
      clear(listBox, explain(err));
    }
  }

  function table(rows) {
    return h('div', { class: 'scroll' }, h('table', {},
      h('caption', { class: 'sr' }, 'All policies'),
      h('thead', {}, h('tr', {}, ['Name', 'Scope', 'State', 'Version', 'Updated', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((p) => {
        const builtin = p.source === 'builtin';
        const who = p.agent_id ? ` (${p.agent_id})` : '';
        return h('tr', {},
          h('th', { scope: 'row' }, p.name, builtin ? h('span', { class: 'badge builtin' }, 'built-in') : null,
            p.description ? h('div', { class: 'muted small' }, p.description) : null),
          h('td', {}, builtin ? 'built-in' : p.scope === 'agent' ? `agent: ${p.agent_id}` : 'tenant-wide'),
          h('td', {}, p.enabled ? h('span', { class: 'badge st-allowed' }, 'enabled') : h('span', { class: 'badge st-denied' }, 'disabled')),
          h('td', {}, builtin ? '—' : `v${p.version}`),
          h('td', {}, builtin ? '—' : when(p.updated_at)),
          h('td', { class: 'actions' },
            builtin ? null : h('button', { type: 'button', class: 'small', 'aria-label': `Edit ${p.name}${who}`, onclick: () => editor.open(p) }, 'Edit'),
            builtin ? null : h('button', {
              type: 'button', class: 'small', 'aria-label': `${p.enabled ? 'Disable' : 'Enable'} ${p.name}${who}`,
              onclick: () => toggle(p),
            }, p.enabled ? 'Disable' : 'Enable'),
            h('button', { type: 'button', class: 'small', 'aria-label': `Rego of ${p.name}${who}`, onclick: () => showRego(p) }, 'Rego')));
      }))));
  }

  async function toggle(p) {
    try {
      if (p.enabled) {
        const r = await call('DELETE', path(p.name, p.agent_id));
        toast(`${r.message} (disabled, v${r.version})`);
      } else {
        // Posting a policy again re-enables it (docs/api.md §A6).
        const cur = await get(path(p.name, p.agent_id));
        const doc = documentOf(cur);
        delete doc.enabled;
        const r = await call('POST', '/v1/control/policies', { body: doc });
        toast(`${r.message} (enabled, v${r.version})`);
      }
      await load();
    } catch (err) {
      clear(listBox, explain(err));
    }
  }

  async function showRego(p) {
    regoBox.hidden = false;
    const title = `Rego of ${p.name}${p.agent_id ? ` (agent ${p.agent_id})` : ''}`;
    clear(regoBox, h('h2', { id: 'rego-title' }, title), h('p', { class: 'muted' }, 'Loading…'));
    try {
      const text = await get(`/v1/control/policies/${encodeURIComponent(p.name)}/rego${q(p.agent_id)}`);
      clear(regoBox, h('h2', { id: 'rego-title' }, title),
        h('p', { class: 'muted' }, p.source === 'builtin' ? 'The built-in\'s module from the Rego library (read-only).' : 'Generated from the policy with OPA\'s AST (read-only).'),
        h('pre', { class: 'code rego', tabindex: '0', 'aria-label': title }, highlightRego(String(text))));
      regoBox.scrollIntoView({ block: 'nearest' });
    } catch (err) {
      clear(regoBox, h('h2', { id: 'rego-title' }, title), explain(err));
    }
  }

  load();
}

// documentOf turns GET /v1/control/policies/{name} into the document that
// would write it again.
function documentOf(p) {
  const doc = { name: p.name, description: p.config.description || undefined };
  if (p.agent_id) doc.agent_id = p.agent_id;
  doc.step_types = p.config.step_types;
  if (p.config.whitelisted_domains && p.config.whitelisted_domains.length) doc.whitelisted_domains = p.config.whitelisted_domains;
  doc.rules = p.config.rules;
  if (!p.enabled) doc.enabled = false;
  return JSON.parse(JSON.stringify(doc));
}

async function effective(agent, box) {
  if (!agent) {
    clear(box, h('p', { class: 'error', role: 'alert' }, 'Type an agent id.'));
    return;
  }
  try {
    const r = await get(`/v1/control/policies${q(agent)}`);
    const scoped = new Set(r.policies.filter((p) => p.scope === 'agent' && p.enabled).map((p) => p.name));
    const why = (p) => {
      if (p.source === 'builtin') return 'built-in: always applies, cannot be overridden';
      if (!p.enabled) return 'disabled: applies to nobody';
      if (p.scope === 'agent') return scoped.has(p.name) ? `${agent}'s own copy: wins over any tenant-wide policy named ${p.name}` : '';
      return scoped.has(p.name) ? `shadowed: ${agent} has its own ${p.name}` : 'tenant-wide: applies, no agent copy of this name';
    };
    clear(box, h('ul', { class: 'effective', 'aria-label': `Effective policies for ${agent}` }, r.policies.map((p) => {
      const on = p.source === 'builtin' || p.effective === true;
      return h('li', { class: on ? 'on' : 'off' },
        h('span', { class: `badge ${on ? 'st-allowed' : 'st-denied'}` }, on ? 'applies' : 'does not apply'), ' ',
        h('strong', {}, p.name), ` — ${p.source === 'builtin' ? 'built-in' : p.scope === 'agent' ? 'agent-scoped' : 'tenant-wide'}: ${why(p)}`);
    })));
  } catch (err) {
    clear(box, explain(err));
  }
}

// editorPanel is the create/edit form. onSaved reloads the list.
function editorPanel(onSaved) {
  const title = h('h2', { id: 'editor-title' }, 'New policy');
  const format = h('select', {}, h('option', { value: 'json' }, 'JSON'), h('option', { value: 'yaml' }, 'YAML'));
  const text = h('textarea', { rows: '16', spellcheck: 'false', class: 'mono', autocapitalize: 'off' });
  const errors = h('div', { 'aria-live': 'polite' });
  const lines = h('ol', { class: 'doc-lines', hidden: true, 'aria-label': 'Document with problems marked' });
  let last = null; // the object the text was generated from
  let lastText = '';
  const el = h('section', { class: 'card', 'aria-labelledby': 'editor-title', hidden: true },
    title,
    h('form', {
      onsubmit: (ev) => { ev.preventDefault(); save(); },
    },
    h('div', { class: 'editor' },
      h('div', {},
        h('div', { class: 'row' }, field('Format', format)),
        field('Policy document', text, 'The document of POST /v1/control/policies: name, description, agent_id (optional), step_types, whitelisted_domains, rules.'),
        h('div', { class: 'row' },
          h('button', { type: 'submit' }, 'Save policy'),
          h('button', { type: 'button', class: 'secondary', onclick: () => { el.hidden = true; } }, 'Close editor'))),
      h('div', {}, errors, lines))));

  format.addEventListener('change', () => {
    // Convert what can be converted: JSON text parses here; YAML text is
    // converted back only when it is unchanged since it was generated.
    let obj = null;
    if (format.value === 'yaml') {
      try { obj = JSON.parse(text.value); } catch { obj = null; }
    } else if (text.value === lastText) {
      obj = last;
    }
    if (obj) show(obj);
    else toast(`Kept the text as it is; it is sent as ${format.value.toUpperCase()}.`);
  });

  function show(obj) {
    last = obj;
    text.value = format.value === 'yaml' ? toYAML(obj) : JSON.stringify(obj, null, 2);
    lastText = text.value;
  }

  async function open(p) {
    el.hidden = false;
    clear(errors);
    lines.hidden = true;
    text.removeAttribute('aria-invalid');
    if (!p) {
      title.textContent = 'New policy';
      show(TEMPLATE);
    } else {
      title.textContent = `Edit ${p.name}${p.agent_id ? ` (agent ${p.agent_id})` : ''}`;
      try {
        show(documentOf(await get(path(p.name, p.agent_id))));
      } catch (err) {
        clear(errors, explain(err));
      }
    }
    el.scrollIntoView({ block: 'nearest' });
    text.focus();
  }

  async function save() {
    clear(errors);
    lines.hidden = true;
    text.removeAttribute('aria-invalid');
    try {
      const r = await call('POST', '/v1/control/policies', {
        raw: text.value,
        contentType: format.value === 'yaml' ? 'application/yaml' : 'application/json',
      });
      clear(errors, h('p', { class: 'ok', role: 'status' }, `${r.message}: ${r.scope === 'agent' ? `agent ${r.agent_id}` : 'tenant-wide'}, version ${r.version}.`));
      onSaved();
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) {
        showProblems(fieldErrors(err.message));
      } else {
        clear(errors, explain(err));
      }
    }
  }

  // showProblems lists each problem with its field, and marks the line of
  // the document the field is on, with the problem beside it.
  function showProblems(problems) {
    const src = text.value.split('\n');
    const at = new Map();
    for (const p of problems) {
      const n = p.field ? lineOf(src, p.field) : -1;
      if (!at.has(n)) at.set(n, []);
      at.get(n).push(p);
    }
    text.setAttribute('aria-invalid', 'true');
    clear(errors, h('div', { class: 'error', role: 'alert' },
      h('strong', {}, 'The policy was not saved:'),
      h('ul', {}, problems.map((p) => h('li', {},
        p.field ? h('code', { class: 'field-name' }, p.field) : null, p.field ? ': ' : '', p.reason,
        p.field && lineOf(src, p.field) >= 0 ? h('span', { class: 'muted' }, ` (line ${lineOf(src, p.field) + 1})`) : null)))));
    clear(lines, src.map((line, i) => h('li', { class: at.has(i) ? 'bad' : '' },
      h('code', {}, line || ' '),
      (at.get(i) || []).map((p) => h('span', { class: 'fielderr', role: 'note' }, `← ${p.field}: ${p.reason}`)))));
    lines.hidden = false;
  }

  return { el, open };
}

// lineOf finds the line of a field path like rules[1].match in a JSON or
// YAML document laid out one key per line: each key is searched after the
// previous one, an index n skips to the (n+1)-th occurrence of the next key.
// -1 when not found.
export function lineOf(src, fieldPath) {
  const segs = fieldPath.replace(/\[(\d+)\]/g, '.#$1').split('.').filter(Boolean);
  let from = 0;
  let found = -1;
  let skip = 0;
  for (const seg of segs) {
    if (seg.startsWith('#')) {
      skip = Number(seg.slice(1));
      continue;
    }
    const re = new RegExp(`^\\s*(-\\s+)?("${seg}"|${seg})\\s*:`);
    let hit = -1;
    for (let i = from; i < src.length; i += 1) {
      if (re.test(src[i])) {
        if (skip === 0) { hit = i; break; }
        skip -= 1;
      }
    }
    skip = 0;
    if (hit < 0) return found;
    found = hit;
    from = hit + 1;
  }
  return found;
}
