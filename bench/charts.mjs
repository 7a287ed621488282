// Draws the README's charts from the committed bench/results/*.json into
// bench/charts/<name>.svg. Only the JSON is read, never a live measurement,
// so a chart always shows the figures of the table printed beside it.
// `npm run bench` runs this after the benchmarks; run it alone after editing
// a chart. A chart whose result file is absent is skipped, not drawn empty.
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { walBaselineRow } from './lib/floor.mjs';
import { compact, groupedBarChart, lineChart, palette } from './lib/svg.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const chartsDir = path.join(root, 'bench', 'charts');

const DB_NAMES = { sqlite: 'SQLite', postgres: 'PostgreSQL', mariadb: 'MariaDB' };

/** Known ids first in the given order, then the rest as they first appear. */
function ordered(ids, preferred) {
  const seen = [...new Set(ids)];
  return [...preferred.filter((id) => seen.includes(id)), ...seen.filter((id) => !preferred.includes(id))];
}

function footer(name, r) {
  const m = r.machine;
  const date = typeof r.date === 'string' ? r.date.slice(0, 10) : null;
  return [`bench/results/${name}.json`, date && `measured ${date}`, m && `${m.cores} cores, ${m.cpuModel}`, m?.node && `node ${m.node}`]
    .filter(Boolean)
    .join(' · ');
}

function runsNote(config) {
  if (!config) return '';
  const runs = config.repeats === 1 ? 'One run' : `Medians of ${config.repeats} runs`;
  return `${runs} of ${config.seconds}\u00a0s after ${config.warmupSeconds}\u00a0s warm-up`;
}

const FALLBACK_COLORS = [palette.pink, palette.gold, palette.green, palette.gray];
function styler(styles) {
  let next = 0;
  return (id) => styles[id] ?? (styles[id] = { color: FALLBACK_COLORS[next++ % FALLBACK_COLORS.length], marker: 'circle' });
}

// --------------------------------------------------------------- the charts

function cityChart(r) {
  const rows = r.chart.commitsPerMin;
  const designs = ordered(rows.map((x) => x.design), ['orderly', 'tracking-bead', 'bundle']);
  const dbs = ordered(rows.map((x) => x.db), ['sqlite', 'postgres', 'mariadb']);
  const rates = [...new Set(rows.map((x) => x.didWorkPct))].sort((a, b) => a - b);
  const style = styler({ orderly: { color: palette.blue }, 'tracking-bead': { color: palette.orange }, bundle: { color: palette.purple } });

  const cell = new Map();
  for (const x of rows) {
    const key = `${x.db}\0${x.didWorkPct}\0${x.design}`;
    // Two figures for one bar would mean the bench wrote a cell twice; which
    // one to draw is not this script's call.
    if (cell.has(key)) throw new Error(`city.json chart.commitsPerMin has two values for ${x.design} on ${x.db} at ${x.didWorkPct}% did work`);
    cell.set(key, x.value);
  }
  const groups = dbs.flatMap((db) =>
    rates.map((pct) => ({
      outer: DB_NAMES[db] ?? db,
      inner: `${pct}%`,
      values: Object.fromEntries(designs.map((d) => [d, cell.get(`${db}\0${pct}\0${d}`)])),
    })),
  );
  const seed = r.chart.seed ?? {};
  const refs = [];
  if (typeof seed.commitsPerMin === 'number') {
    refs.push({ y: seed.commitsPerMin, label: `the seed, measured: ${compact(seed.commitsPerMin)}/min`, color: '#1f2328' });
  }
  if (typeof seed.projectedCommitsPerMin === 'number') {
    refs.push({ y: seed.projectedCommitsPerMin, label: `the seed, projected: ${compact(seed.projectedCommitsPerMin)}/min`, color: palette.gray });
  }
  return groupedBarChart({
    title: "The seed's idle city: database commits per minute, by design",
    subtitle: 'Each bar is one design running the same city of orders against one database; the rest of the fires were no-ops.',
    footer: footer('city', r),
    yLabel: 'commits / min',
    xLabel: 'share of fires whose order did work',
    series: designs.map((d) => ({ id: d, label: d, color: style(d).color })),
    groups,
    refs,
  });
}

function walChart(r) {
  const style = styler({
    floor: { color: palette.gray, dash: '2 3', marker: 'circle' },
    'floor-prealloc': { color: palette.gray, marker: 'square' },
    orderly: { color: palette.blue, marker: 'circle' },
    'orderly-prealloc': { color: palette.purple, marker: 'square' },
    sqlite: { color: palette.orange, marker: 'triangle' },
    'node-fs': { color: palette.gold, marker: 'diamond' },
  });
  const floor1 = r.baseline?.opsPerSec;
  const floorRow = walBaselineRow(r);
  const subjects = ordered(r.results.map((x) => x.subject), (r.subjects ?? []).map((s) => s.id));
  const series = subjects.map((id) => {
    const rows = r.results.filter((x) => x.subject === id && typeof x.opsPerSec === 'number').sort((a, b) => a.inFlight - b.inFlight);
    return {
      label: rows[0]?.label ?? id,
      ...style(id),
      // The floor's single-writer point is the reference line's figure;
      // labelling it twice would only crowd the first column.
      points: rows.map((x) => ({ x: x.inFlight, y: x.opsPerSec, label: x !== floorRow })),
    };
  }).filter((s) => s.points.length);
  return lineChart({
    title: 'Durable appends per second against the fsync floor',
    subtitle:
      `Each append is acknowledged only after the fdatasync that covers it; ${r.config?.recordBytes ?? '?'}-byte records; ` +
      `N in flight = N closed loops. ${runsNote(r.config)}. Both axes logarithmic.`,
    footer: footer('wal', r),
    xLabel: 'appends in flight (closed loops)',
    yLabel: 'durable appends / s',
    series,
    refs: typeof floor1 === 'number' ? [{ y: floor1, label: `fsync floor, 1 writer: ${compact(floor1)}/s`, legend: 'fsync floor (1 writer, write + fdatasync per record)', labelX: 2 }] : [],
  });
}

function leaseChart(r) {
  const style = styler({
    orderly: { color: palette.blue, marker: 'circle' },
    sqlite: { color: palette.orange, marker: 'triangle' },
    postgres: { color: palette.green, marker: 'square' },
  });
  const subjects = ordered(r.durable.map((x) => x.subject), (r.subjects ?? []).filter((s) => s.section === 'durable').map((s) => s.id));
  const series = subjects.map((id) => {
    const rows = r.durable.filter((x) => x.subject === id && typeof x.pairsPerSec === 'number').sort((a, b) => a.inFlight - b.inFlight);
    return { label: rows[0]?.label ?? id, ...style(id), points: rows.map((x) => ({ x: x.inFlight, y: x.pairsPerSec })) };
  }).filter((s) => s.points.length);
  return lineChart({
    title: 'Durable single-flight leases: acquire + release pairs per second',
    subtitle: `An acquire resolves once durable; N in flight = N acquirers, each on its own key. ${runsNote(r.config)}. Both axes logarithmic.`,
    footer: footer('lease', r),
    xLabel: 'acquirers in flight',
    yLabel: 'acquire + release pairs / s',
    series,
  });
}

function auditChart(r) {
  const modes = [
    { id: 'per-record', label: 'one commit per record', color: palette.orange },
    { id: 'writer', label: 'AuditWriter group commit (defaults)', color: palette.blue },
  ];
  const sinks = ordered(r.results.map((x) => x.sink), (r.subjects ?? []).map((s) => s.id));
  const groups = sinks.flatMap((sink) => {
    const levels = [...new Set(r.results.filter((x) => x.sink === sink).map((x) => x.inFlight))].sort((a, b) => a - b);
    return levels.map((n) => ({
      outer: DB_NAMES[sink] ?? sink,
      inner: String(n),
      values: Object.fromEntries(modes.map((m) => [m.id, r.results.find((x) => x.sink === sink && x.inFlight === n && x.mode === m.id)?.recordsPerSec])),
    }));
  });
  return groupedBarChart({
    title: 'Audit records per second: group commit against one commit per record',
    subtitle: `Closed loops, each handing over one record and waiting for its commit; every sink commits durably. ${runsNote(r.config)}.`,
    footer: footer('audit', r),
    yLabel: 'records committed / s',
    xLabel: 'concurrent completions (closed loops)',
    series: modes,
    groups,
  });
}

/**
 * Every chart: the result it is drawn from (bench/results/<source>.json),
 * whether that result has what it needs, and how to draw it. bench/readme.mjs
 * reads this list to embed each chart in its benchmark's section.
 */
function scaleChart(r) {
  const metrics = [
    { key: 'startMs', label: 'start (load + recover + schedule), ms', color: palette.blue, marker: 'circle' },
    { key: 'reloadMs', label: 'reload of all N orders, ms', color: palette.purple, marker: 'square' },
    { key: 'waveMs', label: 'cold-start wave (every order fired once), ms', color: palette.orange, marker: 'triangle' },
    { key: 'rssMiB', label: 'RSS after the wave, MiB', color: palette.green, marker: 'diamond' },
  ];
  const series = ['code', 'exec'].flatMap((kind) =>
    metrics.map((m) => {
      const cells = r.scale.filter((c) => c.kind === kind && typeof c[m.key] === 'number').sort((a, b) => a.orders - b.orders);
      return { label: `${kind} orders: ${m.label}`, color: m.color, marker: m.marker, ...(kind === 'exec' ? { dash: '5 3' } : {}), points: cells.map((c) => ({ x: c.orders, y: c[m.key] })) };
    }),
  ).filter((s) => s.points.length);
  return lineChart({
    title: 'How the controller\'s costs grow with the number of orders',
    subtitle: 'One controller per point, each in its own process, fresh state; code orders solid, exec orders (`exit 100`) dashed. The steady load is the same at every N. Both axes logarithmic.',
    footer: footer('schedule', r),
    xLabel: 'orders on one controller',
    yLabel: 'ms, or MiB for RSS',
    series,
  });
}

export const charts = [
  {
    name: 'schedule-scale',
    source: 'schedule',
    alt: 'Start, reload, cold-start wave and RSS against the number of orders, code and exec orders',
    applies: (r) => Array.isArray(r.scale) && r.scale.length > 0,
    render: scaleChart,
  },
  {
    name: 'city-commits',
    source: 'city',
    alt: 'Database commits per minute in the idle city, by design, database and did-work rate',
    applies: (r) => Array.isArray(r.chart?.commitsPerMin) && r.chart.commitsPerMin.length > 0,
    render: cityChart,
  },
  {
    name: 'wal-appends',
    source: 'wal',
    alt: 'Durable appends per second against appends in flight, orderly Wal against the fsync floor and SQLite',
    applies: (r) => Array.isArray(r.results) && r.results.length > 0,
    render: walChart,
  },
  {
    name: 'lease-durable',
    source: 'lease',
    alt: 'Durable lease acquire and release pairs per second against acquirers in flight, orderly against SQLite and PostgreSQL',
    applies: (r) => Array.isArray(r.durable) && r.durable.length > 0,
    render: leaseChart,
  },
  {
    name: 'audit-sinks',
    source: 'audit',
    alt: 'Audit records per second per sink and concurrency, group commit against one commit per record',
    applies: (r) => Array.isArray(r.results) && r.results.some((x) => x.mode === 'writer'),
    render: auditChart,
  },
];

function resultFile(source) {
  return path.join(root, 'bench', 'results', `${source}.json`);
}

/** The parsed result a chart is drawn from, or null if it has nothing to draw. */
function chartInput(chart) {
  const file = resultFile(chart.source);
  if (!existsSync(file)) return null;
  const r = JSON.parse(readFileSync(file, 'utf8'));
  return chart.applies(r) ? r : null;
}

function main() {
  mkdirSync(chartsDir, { recursive: true });
  let drawn = 0;
  for (const chart of charts) {
    const rel = path.relative(root, resultFile(chart.source));
    const r = chartInput(chart);
    if (!r) {
      const why = existsSync(resultFile(chart.source)) ? `${rel} has no data for it` : `${rel} not found (npm run bench:${chart.source} writes it)`;
      console.log(`charts: skipped ${chart.name}: ${why}`);
      continue;
    }
    const out = path.join(chartsDir, `${chart.name}.svg`);
    writeFileSync(out, chart.render(r));
    drawn++;
    console.log(`charts: wrote ${path.relative(root, out)} from ${rel}`);
  }
  console.log(`charts: ${drawn} of ${charts.length} drawn`);
}

// Run, not imported (bench/readme.mjs imports the list). realpath on both
// sides: the module URL is resolved through symlinks, argv[1] is not.
if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) main();
