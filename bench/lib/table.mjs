// Plain-text tables for benchmark output: right-aligned numbers, left-aligned text.

/**
 * @param {{ key: string, title: string, format?: (v: unknown, row: object) => string }[]} columns
 * @param {object[]} rows
 * @returns {string}
 */
export function formatTable(columns, rows) {
  const cells = rows.map((row) =>
    columns.map((c) => {
      const v = row[c.key];
      if (c.format) return c.format(v, row);
      return v === null || v === undefined ? '—' : String(v);
    }),
  );
  const numeric = columns.map((_, i) => cells.every((r) => /^[-+]?[\d.,]+[x%]?$|^—$/.test(r[i])));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i].length)));
  const pad = (s, i) => (numeric[i] ? s.padStart(widths[i]) : s.padEnd(widths[i]));
  const line = (r) => r.map(pad).join('  ').trimEnd();
  return [
    line(columns.map((c) => c.title)),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map(line),
  ].join('\n');
}

/** Fixed-point with thousands separators; '—' for missing values. */
export function num(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A ratio like `12.3x`; '—' for missing values. */
export function ratio(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return `${v.toFixed(digits)}x`;
}
