// Small hand-written SVG charts: a multi-series line chart and horizontal
// stacked bars. Colours come from classes in console.css (s0…s4, sev-*),
// so the strict style-src needs no inline styles. Each chart is an image
// with a text label; pages put the numbers beside it as a table.
import { h } from './dom.js';

// width is the drawing's width in user units: about the width it will be
// shown at (share of the page's content width), so that 11px labels stay
// about 11px on a phone as on a desktop.
function width(share) {
  return Math.max(280, Math.round((Math.min(window.innerWidth, 1200) - 64) * share));
}

// lineChart draws series [{name, cls, values}] over labels; share is the
// part of the page's width it takes.
export function lineChart(labels, series, label, share = 1) {
  const W = width(share);
  const H = 220;
  const pad = { l: 40, r: 24, t: 10, b: 30 };
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const n = Math.max(1, labels.length - 1);
  const x = (i) => pad.l + ((W - pad.l - pad.r) * i) / n;
  const y = (v) => H - pad.b - ((H - pad.t - pad.b) * v) / max;
  const ticks = [0, Math.round(max / 2), max];
  const step = Math.max(1, Math.ceil(labels.length / Math.max(2, Math.floor(W / 110))));
  return h('figure', { class: 'chart' },
    h('svg:svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'xMidYMid meet' },
      ticks.map((t) => [
        h('svg:line', { x1: pad.l, x2: W - pad.r, y1: y(t), y2: y(t), class: 'grid' }),
        h('svg:text', { x: pad.l - 6, y: y(t) + 4, class: 'axis', 'text-anchor': 'end' }, String(t)),
      ]),
      labels.map((l, i) => (i % step === 0 ? h('svg:text', { x: x(i), y: H - 10, class: 'axis', 'text-anchor': 'middle' }, l) : null)),
      series.map((s) => [
        h('svg:polyline', { points: s.values.map((v, i) => `${x(i)},${y(v)}`).join(' '), class: `line ${s.cls}` }),
        s.values.map((v, i) => (v > 0 ? h('svg:circle', { cx: x(i), cy: y(v), r: 3, class: `dot ${s.cls}` }, h('svg:title', {}, `${s.name} ${labels[i]}: ${v}`)) : null)),
      ])),
    h('figcaption', { class: 'legend' }, series.map((s) => h('span', { class: 'key' }, h('span', { class: `swatch ${s.cls}` }), s.name))));
}

// barChart draws rows [{label, parts: [{name, cls, value}], href?}] as
// horizontal stacked bars; a row with href has its label as a link.
export function barChart(rows, label, share = 1) {
  const W = width(share);
  const rowH = 28;
  const labelW = Math.min(170, Math.round(W * 0.38));
  const H = Math.max(1, rows.length) * rowH + 10;
  const max = Math.max(1, ...rows.map((r) => r.parts.reduce((a, p) => a + p.value, 0)));
  const scale = (v) => ((W - labelW - 60) * v) / max;
  return h('figure', { class: 'chart' },
    h('svg:svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label },
      rows.map((r, i) => {
        const y0 = 5 + i * rowH;
        let x0 = labelW;
        const total = r.parts.reduce((a, p) => a + p.value, 0);
        return [
          h('svg:text', { x: labelW - 8, y: y0 + 17, class: 'axis', 'text-anchor': 'end' }, r.label.length > labelW / 7 ? `${r.label.slice(0, Math.floor(labelW / 7) - 1)}…` : r.label),
          r.parts.map((p) => {
            const w = scale(p.value);
            const rect = h('svg:rect', { x: x0, y: y0 + 3, width: Math.max(0, w), height: rowH - 8, class: `bar ${p.cls}` }, h('svg:title', {}, `${r.label} ${p.name}: ${p.value}`));
            x0 += w;
            return rect;
          }),
          h('svg:text', { x: x0 + 6, y: y0 + 17, class: 'axis' }, String(total)),
        ];
      })));
}
