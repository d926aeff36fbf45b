// highlightRego returns a fragment of spans classed by token kind, for a
// read-only view of a module. The source is only ever text.
import { h } from './dom.js';

const KEYWORDS = new Set(['package', 'import', 'if', 'contains', 'default', 'not', 'some', 'every', 'in', 'else', 'with', 'as', 'true', 'false', 'null']);
const TOKEN = /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"|`[^`]*`)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_]*)|(\s+|[^\sA-Za-z0-9_#"`]+|[\s\S])/g;

export function highlightRego(src) {
  const frag = document.createDocumentFragment();
  let m;
  TOKEN.lastIndex = 0;
  let plain = '';
  const flush = () => {
    if (plain) frag.append(document.createTextNode(plain));
    plain = '';
  };
  while ((m = TOKEN.exec(src)) !== null) {
    let cls = null;
    if (m[1]) cls = 'tok-comment';
    else if (m[2]) cls = 'tok-string';
    else if (m[3]) cls = 'tok-number';
    else if (m[4] && KEYWORDS.has(m[4])) cls = 'tok-keyword';
    if (cls) {
      flush();
      frag.append(h('span', { class: cls }, m[0]));
    } else {
      plain += m[0];
    }
    if (m[0].length === 0) TOKEN.lastIndex += 1;
  }
  flush();
  return frag;
}
