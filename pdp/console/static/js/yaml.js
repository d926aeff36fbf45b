// toYAML writes a JSON value as block-style YAML. Strings are written as
// JSON strings, which YAML reads as double-quoted scalars, so no value can
// change meaning (no "yes"/"no"/"null" surprises).
export function toYAML(v, indent = '') {
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return v.map((x) => {
      const inner = toYAML(x, `${indent}  `);
      return isBlock(x) ? `${indent}- ${inner.trimStart()}` : `${indent}- ${inner}`;
    }).join('\n');
  }
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    if (keys.length === 0) return '{}';
    return keys.map((k) => {
      const x = v[k];
      const key = /^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k);
      return isBlock(x) ? `${indent}${key}:\n${toYAML(x, `${indent}  `)}` : `${indent}${key}: ${toYAML(x, indent)}`;
    }).join('\n');
  }
  return JSON.stringify(v === undefined ? null : v);
}

function isBlock(x) {
  return x !== null && typeof x === 'object' && Object.keys(x).length > 0;
}
