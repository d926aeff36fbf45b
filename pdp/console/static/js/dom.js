// Small DOM helpers. Text always enters the page as text nodes or
// attribute values, never as HTML, so nothing the API returns (policy
// names, reasons, params) can become markup or script.

// h builds an element: h('a', {href: '#/x', class: 'c', onclick: fn}, 'text', child…).
// Attributes named on* become listeners; null/undefined/false attributes
// and children are skipped.
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'value' && !svg) {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties el and appends children.
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
// uid returns a fresh element id with prefix.
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

// field is a labelled control: a label and the control, stacked.
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id }, label), control];
  if (hint) {
    const hid = uid('hint');
    control.setAttribute('aria-describedby', hid);
    parts.push(h('span', { class: 'hint', id: hid }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

// age renders the time since an RFC 3339 timestamp, e.g. "42 s", "3 min".
export function age(ts, now = Date.now()) {
  const s = Math.max(0, Math.round((now - Date.parse(ts)) / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

// when renders a timestamp for people, in their locale, with the raw value
// as a tooltip.
export function when(ts) {
  if (!ts) return h('span', {}, '—');
  const d = new Date(ts);
  return h('time', { datetime: ts, title: ts }, isNaN(d) ? ts : d.toLocaleString());
}

// statusBadge shows an action status.
export function statusBadge(status) {
  return h('span', { class: `badge st-${status}` }, String(status).replace('_', ' '));
}

// toast announces a short message to screen readers and sighted users.
export function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 4000);
}

// pretty renders JSON for reading.
export function pretty(v) {
  return JSON.stringify(v, null, 2);
}
