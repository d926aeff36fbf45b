// Playground: decide an action as POST /v1/actions would, without
// recording it (POST /v1/control/dry-run), with the saved policies and,
// side by side, with an unsaved draft policy put in.
import { h, clear, field, uid } from './dom.js';
import { get, post, explain, ApiError } from './api.js';
import { decisionView } from './decision.js';

export function render(root) {
  const agents = h('datalist', { id: uid('agents') });
  const agent = h('input', { type: 'text', list: agents.id, autocomplete: 'off', placeholder: 'billing-bot' });
  const action = h('input', { type: 'text', required: true, autocomplete: 'off', value: 'slack.send_message' });
  const params = h('textarea', { rows: '5', class: 'mono', spellcheck: 'false',
    value: JSON.stringify({ channel: '#external', text: 'Customer email: alice@example.com' }, null, 2) });
  const step = h('select', {}, ['', 'action', 'thought', 'observation', 'output', 'error', 'policy_check']
    .map((s) => h('option', { value: s }, s || 'ACTION (default)')));
  const draft = h('textarea', { rows: '6', class: 'mono', spellcheck: 'false', placeholder: '{"name": "pii_protection", "rules": [...]}' });
  const draftFormat = h('select', {}, h('option', { value: 'json' }, 'JSON'), h('option', { value: 'yaml' }, 'YAML'));
  const problems = h('div', { 'aria-live': 'polite' });
  const saved = h('section', { class: 'card', 'aria-labelledby': 'saved-title' }, h('h2', { id: 'saved-title' }, 'Saved policies'), h('p', { class: 'muted' }, 'Evaluate an action to see the decision.'));
  const drafted = h('section', { class: 'card', 'aria-labelledby': 'draft-title', hidden: true }, h('h2', { id: 'draft-title' }, 'With the draft policy'));

  const form = h('form', { class: 'card' },
    h('p', { class: 'muted' }, 'Nothing is recorded: no action, no audit entry, no approval. The decision is the one POST /v1/actions would return now.'),
    h('div', { class: 'grid2' },
      h('div', {}, field('Agent', agent, 'Optional agent_id.'), agents, field('Action', action), field('Step type', step)),
      field('Params', params, 'A JSON object.')),
    h('details', { class: 'draftbox' },
      h('summary', {}, 'Try a draft policy (not saved)'),
      field('Draft format', draftFormat),
      field('Draft policy', draft, 'A policy document as you would save it; it replaces the saved policy of the same name and scope for this evaluation only.')),
    h('button', { type: 'submit' }, 'Evaluate'),
    problems);
  form.addEventListener('submit', (ev) => { ev.preventDefault(); evaluate(); });

  clear(root, h('h1', {}, 'Playground'), form, h('div', { class: 'sidebyside' }, saved, drafted));

  get('/v1/control/agents').then((r) => clear(agents, r.agents.map((a) => h('option', { value: a.agent_id })))).catch(() => {});

  async function evaluate() {
    clear(problems);
    let p;
    try {
      p = params.value.trim() ? JSON.parse(params.value) : {};
      if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new Error('must be a JSON object');
    } catch (err) {
      params.setAttribute('aria-invalid', 'true');
      clear(problems, h('p', { class: 'error', role: 'alert' }, `Params: ${err.message}`));
      return;
    }
    params.removeAttribute('aria-invalid');
    const body = { action: action.value, params: p };
    if (agent.value.trim()) body.agent_id = agent.value.trim();
    if (step.value) body.step_type = step.value;
    if (draft.value.trim()) {
      body.draft = draft.value;
      body.draft_format = draftFormat.value;
    }
    clear(saved, h('h2', { id: 'saved-title' }, 'Saved policies'), h('p', { class: 'muted' }, 'Evaluating…'));
    try {
      const r = await post('/v1/control/dry-run', body);
      clear(saved, h('h2', { id: 'saved-title' }, 'Saved policies'), decisionView(r.saved, 'Decision with the saved policies'));
      drafted.hidden = !r.draft;
      if (r.draft) clear(drafted, h('h2', { id: 'draft-title' }, 'With the draft policy'), decisionView(r.draft, 'Decision with the draft policy'));
    } catch (err) {
      clear(saved, h('h2', { id: 'saved-title' }, 'Saved policies'));
      drafted.hidden = true;
      if (err instanceof ApiError && err.status === 400) {
        clear(problems, h('div', { class: 'error', role: 'alert' }, h('strong', {}, 'Not evaluated: '),
          h('ul', {}, err.message.split('; ').map((m) => h('li', {}, m)))));
      } else {
        clear(problems, explain(err));
      }
    }
  }
}
