// Hand-written SVG charts for the README's performance section. No
// dependency, and the same input always gives the same bytes (no dates, no
// generated ids, coordinates rounded to 0.1 px), so a chart changes in git
// only when its figures do. Each chart paints its own white card: GitHub
// shows an SVG as an <img>, and in dark mode transparent charts with dark
// ink would vanish.

const FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', 'Noto Sans', Helvetica, Arial, sans-serif";
const INK = '#1f2328';
const MUTED = '#59636e';
const AXIS = '#8c959f';
const GRID = '#d8dee4';
const GRID_MINOR = '#eef1f4';
const CARD_BORDER = '#d1d9e0';

/**
 * GitHub's Primer foreground colours: dark enough for text on white (value
 * labels are drawn in their series' colour), distinct for the common kinds
 * of colour blindness when paired with the dash and marker shapes below.
 */
export const palette = {
  blue: '#0969da',
  purple: '#8250df',
  orange: '#bc4c00',
  green: '#1a7f37',
  pink: '#bf3989',
  gold: '#9a6700',
  gray: '#59636e',
};

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A coordinate, rounded so that float noise never reaches the file. */
function px(v) {
  const r = Math.round(v * 10) / 10;
  return Object.is(r, -0) ? '0' : String(r);
}

/** 3 significant digits with k/M suffixes: 5274.3 → 5.27k, 533259 → 533k, 64 → 64. */
export function compact(v) {
  if (v === 0) return '0';
  const r = Number(v.toPrecision(3));
  const abs = Math.abs(r);
  if (abs >= 1e6) return `${r / 1e6}M`;
  if (abs >= 1e3) return `${r / 1e3}k`;
  return String(r);
}

// Rough advance widths (in em), sized for DejaVu Sans, wider than the
// Helvetica/Segoe most viewers have: layout has no font metrics, and a
// generous estimate keeps labels apart whichever sans-serif is substituted.
const NARROW = new Set('ijlI.,:;|!\'');
const SEMI = new Set('frt ()[]-/');
const WIDE = new Set('mwMW@%');
function textWidth(text, size) {
  let em = 0;
  for (const ch of String(text)) {
    if (NARROW.has(ch)) em += 0.3;
    else if (SEMI.has(ch)) em += 0.4;
    else if (WIDE.has(ch)) em += 0.95;
    else if (ch >= 'A' && ch <= 'Z') em += 0.72;
    else if (ch >= '0' && ch <= '9') em += 0.64;
    else em += 0.6;
  }
  return em * size;
}

function text(x, y, content, { size = 12, fill = INK, anchor = 'start', weight, halo = false, rotate, baseline } = {}) {
  const attrs = [
    `x="${px(x)}"`,
    `y="${px(y)}"`,
    `font-size="${size}"`,
    `fill="${fill}"`,
    anchor === 'start' ? '' : `text-anchor="${anchor}"`,
    weight ? `font-weight="${weight}"` : '',
    baseline ? `dominant-baseline="${baseline}"` : '',
    // A white outline under the glyphs keeps a label legible where it
    // crosses a line or a gridline.
    halo ? 'stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"' : '',
    rotate ? `transform="rotate(${rotate} ${px(x)} ${px(y)})"` : '',
  ].filter(Boolean);
  return `<text ${attrs.join(' ')}>${esc(content)}</text>`;
}

function line(x1, y1, x2, y2, { stroke = GRID, width = 1, dash } = {}) {
  return `<line x1="${px(x1)}" y1="${px(y1)}" x2="${px(x2)}" y2="${px(y2)}" stroke="${stroke}" stroke-width="${width}"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`;
}

function marker(shape, x, y, color) {
  const common = `fill="${color}" stroke="#ffffff" stroke-width="1.5"`;
  switch (shape) {
    case 'square':
      return `<rect x="${px(x - 4)}" y="${px(y - 4)}" width="8" height="8" ${common}/>`;
    case 'diamond':
      return `<path d="M${px(x)} ${px(y - 5.5)}L${px(x + 5.5)} ${px(y)}L${px(x)} ${px(y + 5.5)}L${px(x - 5.5)} ${px(y)}Z" ${common}/>`;
    case 'triangle':
      return `<path d="M${px(x)} ${px(y - 5)}L${px(x + 5)} ${px(y + 4)}L${px(x - 5)} ${px(y + 4)}Z" ${common}/>`;
    default:
      return `<circle cx="${px(x)}" cy="${px(y)}" r="4" ${common}/>`;
  }
}

/** Evenly spaced round ticks from 0 to at least `max`. */
function linearTicks(max, count = 5) {
  const top = max > 0 ? max : 1;
  const raw = top / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let i = 0; i * step < top + step * 1e-9; i++) ticks.push(Number((i * step).toPrecision(12)));
  if (ticks[ticks.length - 1] < top) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

const ONE_TWO_FIVE = [1, 2, 5];

/** 1-2-5 values from the largest one ≤ lo to the smallest one ≥ hi. */
function oneTwoFive(lo, hi) {
  const values = [];
  for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)) + 1; e++) {
    for (const m of ONE_TWO_FIVE) values.push(Number((m * 10 ** e).toPrecision(12)));
  }
  const start = values.findLastIndex((v) => v <= lo);
  const end = values.findIndex((v) => v >= hi);
  return values.slice(start, end + 1);
}

/**
 * Spreads labels that want the same column apart vertically: overlapping
 * ones are stacked `gap` px apart, centred on where they wanted to be.
 * Returns the y of each label, in input order.
 */
function spread(wanted, gap) {
  const order = wanted.map((y, i) => ({ y, i })).sort((a, b) => a.y - b.y || a.i - b.i);
  let clusters = order.map((o) => ({ members: [o], top: o.y }));
  for (let pass = 0; pass < 50; pass++) {
    const merged = [];
    for (const c of clusters) {
      const prev = merged[merged.length - 1];
      if (prev && c.top < prev.top + prev.members.length * gap) {
        prev.members.push(...c.members);
        const mean = prev.members.reduce((s, m) => s + m.y, 0) / prev.members.length;
        prev.top = mean - ((prev.members.length - 1) * gap) / 2;
      } else merged.push({ members: [...c.members], top: c.top });
    }
    const stable = merged.length === clusters.length;
    clusters = merged;
    if (stable) break;
  }
  const out = new Array(wanted.length);
  for (const c of clusters) c.members.forEach((m, k) => (out[m.i] = c.top + k * gap));
  return out;
}

/**
 * The card, title, subtitle and a wrapped legend; returns the parts and the
 * y where the plot may start.
 */
function frame({ width, height, title, subtitle, legend, footer }) {
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${esc(FONT)}" role="img" aria-label="${esc(title)}">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0.5" y="0.5" width="${width - 1}" height="${height - 1}" rx="6" fill="#ffffff" stroke="${CARD_BORDER}"/>`,
    text(20, 30, title, { size: 16, weight: 600 }),
  ];
  let y = 30;
  for (const lineText of wrap(subtitle ?? '', width - 40, 12)) {
    y += 17;
    parts.push(text(20, y, lineText, { size: 12, fill: MUTED }));
  }
  // Legend: swatch + label items, wrapped to the card's width.
  y += 22;
  let x = 20;
  for (const item of legend) {
    const w = 28 + textWidth(item.label, 12) + 18;
    if (x + w > width - 20 && x > 20) {
      x = 20;
      y += 20;
    }
    if (item.kind === 'bar') {
      parts.push(`<rect x="${px(x)}" y="${px(y - 9)}" width="18" height="11" rx="2" fill="${item.color}"/>`);
    } else {
      if (item.kind !== 'point') parts.push(line(x, y - 4, x + 22, y - 4, { stroke: item.color, width: item.kind === 'ref' ? 1.5 : 2.5, dash: item.dash }));
      if (item.marker) parts.push(marker(item.marker, x + 11, y - 4, item.color));
    }
    parts.push(text(x + 28, y, item.label, { size: 12 }));
    x += w;
  }
  if (footer) parts.push(text(width - 20, height - 10, footer, { size: 10, fill: MUTED, anchor: 'end' }));
  return { parts, top: y + 18 };
}

/** Greedy word wrap by estimated width. */
function wrap(s, maxWidth, size) {
  const lines = [];
  let current = '';
  // Plain spaces only: a no-break space (\u00a0) keeps a figure with its unit.
  for (const word of s.split(/ +/).filter(Boolean)) {
    const next = current ? `${current} ${word}` : word;
    if (current && textWidth(next, size) > maxWidth) {
      lines.push(current);
      current = word;
    } else current = next;
  }
  if (current) lines.push(current);
  return lines;
}

/**
 * Lines over a log2 x axis (concurrency levels) and a log10 y axis
 * (throughput), for figures that span orders of magnitude.
 *
 * @param {object} o
 * @param {string} o.title
 * @param {string} [o.subtitle]
 * @param {string} [o.footer]
 * @param {string} o.xLabel
 * @param {string} o.yLabel
 * @param {{ label: string, color: string, dash?: string, marker?: string,
 *   points: { x: number, y: number, label?: boolean }[] }[]} o.series
 *   a series with one point is drawn as its marker alone
 * @param {{ y: number, label: string, color?: string, labelX?: number }[]} [o.refs]
 *   horizontal reference lines; labelX is the x (data units) the label starts at
 * @param {number} [o.width]
 * @param {number} [o.height]
 */
export function lineChart({ title, subtitle, footer, xLabel, yLabel, series: given, refs = [], width = 760, height = 500 }) {
  // A log axis has no place for zero: a subject that completed nothing is in
  // the table beside the chart, not on it.
  const series = given.map((s) => ({ ...s, points: s.points.filter((p) => p.y > 0) })).filter((s) => s.points.length);
  const legend = [
    ...series.map((s) => ({ label: s.label, color: s.color, dash: s.dash, marker: s.marker ?? 'circle', kind: s.points.length > 1 ? 'line' : 'point' })),
    ...refs.map((r) => ({ label: r.legend ?? r.label, color: r.color ?? INK, dash: '6 4', kind: 'ref' })),
  ];
  const { parts, top } = frame({ width, height, title, subtitle, legend, footer });

  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = [...series.flatMap((s) => s.points.map((p) => p.y)), ...refs.map((r) => r.y)].filter((v) => v > 0);
  const xMin = 2 ** Math.floor(Math.log2(Math.min(...xs)));
  const xMax = 2 ** Math.ceil(Math.log2(Math.max(...xs)));
  const yTicks = oneTwoFive(Math.min(...ys) / 1.15, Math.max(...ys) * 1.15);
  const [yLo, yHi] = [yTicks[0], yTicks[yTicks.length - 1]];

  const plot = { left: 78, right: width - 24, top, bottom: height - 76 };
  // Room inside the plot for the value labels left of the first column and
  // right of the others.
  const inner = { left: plot.left + 58, right: plot.right - 52 };
  const X = (x) => inner.left + ((Math.log2(x) - Math.log2(xMin)) / (Math.log2(xMax) - Math.log2(xMin) || 1)) * (inner.right - inner.left);
  const Y = (y) => plot.bottom - ((Math.log10(y) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * (plot.bottom - plot.top);

  // Grid: every 1-2-5 value labelled, decades drawn stronger.
  for (const t of yTicks) {
    const decade = Number.isInteger(Math.log10(t));
    parts.push(line(plot.left, Y(t), plot.right, Y(t), { stroke: decade ? GRID : GRID_MINOR }));
    parts.push(text(plot.left - 8, Y(t) + 4, compact(t), { size: 11, fill: MUTED, anchor: 'end' }));
  }
  for (let x = xMin; x <= xMax; x *= 2) {
    parts.push(line(X(x), plot.top, X(x), plot.bottom, { stroke: GRID_MINOR }));
    parts.push(line(X(x), plot.bottom, X(x), plot.bottom + 5, { stroke: AXIS }));
    parts.push(text(X(x), plot.bottom + 19, String(x), { size: 11, fill: MUTED, anchor: 'middle' }));
  }
  parts.push(line(plot.left, plot.bottom, plot.right, plot.bottom, { stroke: AXIS }));
  parts.push(line(plot.left, plot.top, plot.left, plot.bottom, { stroke: AXIS }));
  parts.push(text((plot.left + plot.right) / 2, plot.bottom + 40, xLabel, { size: 12, anchor: 'middle' }));
  parts.push(text(20, (plot.top + plot.bottom) / 2, yLabel, { size: 12, anchor: 'middle', rotate: -90, baseline: 'hanging' }));

  for (const r of refs) {
    const color = r.color ?? INK;
    parts.push(line(plot.left, Y(r.y), plot.right, Y(r.y), { stroke: color, width: 1.5, dash: '6 4' }));
    const lx = r.labelX === undefined ? plot.left + 8 : X(r.labelX);
    parts.push(text(lx, Y(r.y) + 15, r.label, { size: 11, fill: color, halo: true }));
  }

  for (const s of series) {
    if (s.points.length > 1) {
      const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${px(X(p.x))} ${px(Y(p.y))}`).join('');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.5" stroke-linejoin="round"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    }
    for (const p of s.points) parts.push(marker(s.marker ?? 'circle', X(p.x), Y(p.y), s.color));
  }

  // Value labels, column by column, on the side of each point its line
  // does not leave by (below a rising segment, above a falling or flat one),
  // then spread apart where they would still overlap.
  const columns = new Map();
  for (const s of series) {
    s.points.forEach((p, i) => {
      if (p.label === false) return;
      const next = s.points[i + 1];
      let dy = 4;
      if (p.x !== xMin && next) dy = Y(next.y) < Y(p.y) - 2 ? 16 : -8;
      if (!columns.has(p.x)) columns.set(p.x, []);
      columns.get(p.x).push({ y: Y(p.y) + dy, text: compact(p.y), color: s.color });
    });
  }
  for (const [x, labels] of [...columns].sort((a, b) => a[0] - b[0])) {
    const placed = spread(labels.map((l) => l.y), 14);
    const first = x === xMin;
    labels.forEach((l, i) => {
      parts.push(text(X(x) + (first ? -9 : 7), placed[i], l.text, { size: 11, fill: l.color, anchor: first ? 'end' : 'start', weight: 600, halo: true }));
    });
  }

  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/**
 * Grouped bars on a linear y axis from zero. Groups are pairs of an outer
 * category (drawn once, under its run of groups) and an inner one.
 *
 * @param {object} o
 * @param {string} o.title
 * @param {string} [o.subtitle]
 * @param {string} [o.footer]
 * @param {string} o.yLabel
 * @param {string} [o.xLabel] what the inner categories are, under the outer ones
 * @param {{ id: string, label: string, color: string }[]} o.series bars of each group, in order
 * @param {{ outer: string, inner: string, values: Record<string, number|null|undefined> }[]} o.groups
 *   values by series id; a missing value leaves its slot empty with a dash
 * @param {{ y: number, label: string, color?: string }[]} [o.refs] horizontal reference
 *   lines, named in the legend and tagged with their value right of the plot
 * @param {(v: number) => string} [o.format] value label format
 * @param {number} [o.width]
 * @param {number} [o.height]
 */
export function groupedBarChart({ title, subtitle, footer, yLabel, xLabel, series, groups, refs = [], format = compact, width = 860, height = 500 }) {
  const legend = [
    ...series.map((s) => ({ label: s.label, color: s.color, kind: 'bar' })),
    ...refs.map((r) => ({ label: r.legend ?? r.label, color: r.color ?? INK, dash: '6 4', kind: 'ref' })),
  ];
  const { parts, top } = frame({ width, height, title, subtitle, legend, footer });

  const values = groups.flatMap((g) => series.map((s) => g.values[s.id])).filter((v) => typeof v === 'number');
  const yTicks = linearTicks(Math.max(...values, ...refs.map((r) => r.y), 0) * 1.12);
  const yHi = yTicks[yTicks.length - 1];

  // A reference line's label on the plot would sit on some bar; the legend
  // names it, and only its value goes in the right margin.
  const plot = { left: 78, right: width - (refs.length ? 58 : 20), top: top + 8, bottom: height - (xLabel ? 90 : 70) };
  const Y = (y) => plot.bottom - (y / yHi) * (plot.bottom - plot.top);

  for (const t of yTicks) {
    parts.push(line(plot.left, Y(t), plot.right, Y(t), { stroke: t === 0 ? AXIS : GRID }));
    parts.push(text(plot.left - 8, Y(t) + 4, format(t), { size: 11, fill: MUTED, anchor: 'end' }));
  }
  parts.push(text(20, (plot.top + plot.bottom) / 2, yLabel, { size: 12, anchor: 'middle', rotate: -90, baseline: 'hanging' }));

  // Outer categories get a little extra space between them so that runs of
  // groups read as blocks.
  const outerBreaks = groups.reduce((n, g, i) => n + (i > 0 && g.outer !== groups[i - 1].outer ? 1 : 0), 0);
  const slot = (plot.right - plot.left) / (groups.length + outerBreaks * 0.5);
  const barWidth = Math.min(40, (slot * 0.9) / series.length);
  let cursor = plot.left;
  const outerRuns = [];
  const valueLabels = [];
  groups.forEach((g, gi) => {
    if (gi > 0 && g.outer !== groups[gi - 1].outer) {
      const sep = cursor + slot * 0.25;
      parts.push(line(sep, plot.top, sep, plot.bottom + 42, { stroke: GRID }));
      cursor += slot * 0.5;
    }
    const center = cursor + slot / 2;
    const run = outerRuns[outerRuns.length - 1];
    if (run && run.label === g.outer) run.end = cursor + slot;
    else outerRuns.push({ label: g.outer, start: cursor, end: cursor + slot });
    const x0 = center - (barWidth * series.length) / 2;
    series.forEach((s, si) => {
      const v = g.values[s.id];
      const x = x0 + si * barWidth;
      const mid = x + barWidth / 2;
      if (typeof v !== 'number') {
        valueLabels.push(text(mid, plot.bottom - 5, '—', { size: 11, fill: MUTED, anchor: 'middle' }));
        return;
      }
      const h = plot.bottom - Y(v);
      parts.push(`<rect x="${px(x + 1)}" y="${px(Y(v))}" width="${px(barWidth - 2)}" height="${px(h)}" fill="${s.color}"/>`);
      const label = format(v);
      // Upright when it fits over its bar (bold runs ~10% wider), else turned
      // to run up from the bar's top, so neighbouring labels never touch.
      if (textWidth(label, 10) * 1.1 <= barWidth - 1) valueLabels.push(text(mid, Y(v) - 4, label, { size: 10, fill: s.color, anchor: 'middle', weight: 600, halo: true }));
      else valueLabels.push(text(mid + 4, Y(v) - 4, label, { size: 10, fill: s.color, weight: 600, halo: true, rotate: -90 }));
    });
    parts.push(text(center, plot.bottom + 17, g.inner, { size: 11, fill: MUTED, anchor: 'middle' }));
    cursor += slot;
  });
  for (const run of outerRuns) parts.push(text((run.start + run.end) / 2, plot.bottom + 37, run.label, { size: 12, weight: 600, anchor: 'middle' }));
  if (xLabel) parts.push(text((plot.left + plot.right) / 2, plot.bottom + 58, xLabel, { size: 12, fill: MUTED, anchor: 'middle' }));

  // Reference lines go over the bars, so that a bar reaching past one shows.
  const tagYs = spread(refs.map((r) => Y(r.y) + 4), 14);
  refs.forEach((r, i) => {
    const color = r.color ?? INK;
    parts.push(line(plot.left, Y(r.y), plot.right, Y(r.y), { stroke: color, width: 1.5, dash: '6 4' }));
    parts.push(text(plot.right + 6, tagYs[i], r.tag ?? format(r.y), { size: 11, fill: color, weight: 600 }));
  });
  parts.push(...valueLabels);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
