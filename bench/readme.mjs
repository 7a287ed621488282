// Renders the benchmark write-up from bench/results/*.json, in two places:
//
// - docs/benchmarks.md, generated whole: the words the reports use, a
//   header naming the run (date, machine, the disk's fsync floor, the
//   command), then for each benchmark its chart(s) and the report it
//   printed, verbatim.
// - README.md's Performance summary, between `<!-- bench:start summary -->`
//   and `<!-- bench:end -->`: the run's date, machine and command, a link to
//   docs/benchmarks.md, and a table of headline figures (orderly against the
//   baseline measured beside it), each computed from the same JSON. Prose
//   around the block is kept; nothing inside it is typed by hand.
//
// Only the committed JSON (and which charts exist in bench/charts) is read,
// never a live measurement. `npm run bench` runs this last; run it alone
// (`npm run bench:readme`) after any bench:<name>.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { charts } from './charts.mjs';
import { walBaselineRow } from './lib/floor.mjs';
import { num } from './lib/table.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const END = '<!-- bench:end -->';
const start = (name) => `<!-- bench:start ${name} -->`;
const DOC = 'docs/benchmarks.md';

const sections = [
  ['city', "The seed's idle city: orderly against the tracking-bead design (`npm run bench:city`)"],
  ['wal', 'Durable appends: the WAL against the fsync floor, SQLite and node fs (`npm run bench:wal`)'],
  ['lease', 'Single-flight leases: in memory, durable, against SQLite and PostgreSQL (`npm run bench:lease`)'],
  ['schedule', 'Scheduling: fire lateness and controller CPU per no-op fire (`npm run bench:schedule`)'],
  ['audit', 'Audit writes: group commit against one commit per record (`npm run bench:audit`)'],
  ['http', 'The HTTP API under load: fire lateness while the feed is read 1,000 times a second (`npm run bench:http`)'],
  ['cluster', 'Cluster mode: database writes of the idle city on three controllers, against pg-boss (`npm run bench:cluster`)'],
];

const DB_NAMES = { sqlite: 'SQLite', postgres: 'PostgreSQL', mariadb: 'MariaDB' };

function readResult(name) {
  const file = `${root}bench/results/${name}.json`;
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null;
}

function when(iso) {
  return typeof iso === 'string' ? `${iso.slice(0, 16).replace('T', ' ')} UTC` : 'an unrecorded date';
}

function machine(m, { rustc = false } = {}) {
  if (!m) return 'an unrecorded machine';
  const fs = m.dataFilesystem ? `, data on ${m.dataFilesystem.fstype} (${m.dataFilesystem.source})` : '';
  const toolchain = rustc && m.rustc ? `, ${m.rustc.split(' (')[0]}` : '';
  return `${m.cores} cores (${m.cpuModel}), ${Math.round(m.memoryBytes / 2 ** 30)} GiB, ${m.platform}, node ${m.node}${toolchain}${fs}`;
}

function floorText(f) {
  const record = f.recordBytes ? `${f.recordBytes}-byte record` : 'record';
  const p50 = typeof f.p50us === 'number' ? `; p50 ${num(f.p50us)} µs` : '';
  return `**${num(f.opsPerSec)} durable writes/s** (one writer, write + fdatasync per ${record}${p50})`;
}

/** bench:wal's own baseline, for a header without a recorded `npm run bench`. */
function floorOfWal(wal) {
  const row = walBaselineRow(wal);
  return row ? { opsPerSec: row.opsPerSec, p50us: row.p50us, recordBytes: wal.config?.recordBytes } : null;
}

const inRun = (run, r) => Boolean(run && r?.date && r.date >= run.date && r.date <= run.finishedAt);

/** Sections with a result that did not come from the recorded run. */
const notFromRun = (run, results) => sections.filter(([name]) => results[name] && !inRun(run, results[name])).map(([name]) => name);

// ------------------------------------------------------- docs/benchmarks.md

function header(run, results) {
  const shared = 'The machine is shared: each table says how many runs its figures are the median of, and every ratio is against a baseline measured in the same run.';
  if (run) {
    const lines = [
      `Measured ${when(run.date)} with \`${run.command}\` on ${machine(run.machine, { rustc: true })}.`,
      `Disk fsync floor in that run: ${floorText(run.fsyncFloor)}, measured by ${run.fsyncFloor.measuredBy}.`,
    ];
    const elsewhere = notFromRun(run, results);
    if (elsewhere.length) lines.push(`Not from that run (each dated in its section): ${elsewhere.join(', ')}.`);
    return [lines.join(' '), '', shared].join('\n');
  }
  const present = sections.map(([name]) => results[name]).filter(Boolean);
  const machines = new Set(present.map((r) => machine(r.machine)));
  const lines = ['No `npm run bench` run is recorded yet (it writes `bench/results/run.json`): each section below was measured on its own, on the date and with the command it names.'];
  if (machines.size === 1) lines.push(`All on ${[...machines][0]}.`);
  const floor = floorOfWal(results.wal);
  if (floor) lines.push(`Disk fsync floor: ${floorText(floor)}, the baseline of \`${results.wal.command}\` on ${when(results.wal.date)}.`);
  return [lines.join(' '), '', shared].join('\n');
}

function section(name, title, run, r) {
  const parts = [`## ${title}`, ''];
  if (!r?.report) {
    parts.push(`Not measured yet: \`npm run bench:${name}\` writes \`bench/results/${name}.json\`.`);
    return parts.join('\n');
  }
  const json = `(JSON: [\`bench/results/${name}.json\`](../bench/results/${name}.json))`;
  parts.push(
    inRun(run, r)
      ? `Part of the run above, ${when(r.date)} ${json}.`
      : `Measured ${when(r.date)} on ${machine(r.machine)} with \`${r.command}\` ${json}.`,
    '',
  );
  for (const chart of charts.filter((c) => c.source === name)) {
    // docs/ is one level down: chart paths are relative to it.
    if (chart.applies(r) && existsSync(`${root}bench/charts/${chart.name}.svg`)) parts.push(`![${chart.alt}](../bench/charts/${chart.name}.svg)`, '');
  }
  parts.push('```', r.report.trimEnd(), '```');
  return parts.join('\n');
}

function benchmarksDoc(run, results) {
  return [
    '# Benchmarks',
    '',
    '<!-- Generated by `npm run bench:readme` (run last by `npm run bench`) from bench/results/*.json and bench/charts/*.svg. Edits here are overwritten: change bench/readme.mjs instead. -->',
    '',
    'Every figure below is printed by a benchmark in `bench/` and copied here from the result JSON committed beside it; the README\'s Performance section summarises them. Each report is quoted as the benchmark printed it.',
    '',
    'Words the reports use: *the seed* is the proposal this project implements (the shared proposal `order-dispatch-decouple-proposal.txt`), whose idle 3-rig city (section 2: about 16 fires and 64 database commits per minute) `examples/city` reproduces; *tracking-bead* is the design Gas City uses today, a tracking bead written per fire (4 commits per fire, whether the order did work or not); *bundle* is the proposal\'s cheaper alternative that keeps tracking beads (its section 13, "§13": 2 commits per fire); *EL* is the Node.js event-loop delay.',
    '',
    '## The run',
    '',
    header(run, results),
    '',
    ...sections.flatMap(([name, title]) => [section(name, title, run, results[name]), '']),
  ].join('\n');
}

// ------------------------------------------------------ the README summary

const fixed = (v, digits) => (typeof v === 'number' && Number.isFinite(v) ? num(v, digits) : '—');
const times = (v, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? `${num(v, digits)}x` : '—');
const prefer = (ids, order) => order.find((id) => ids.includes(id)) ?? ids[0];
/** The largest of `values` not above `cap` (the concurrency the targets quote), else the smallest. */
function atOrBelow(values, cap) {
  const under = values.filter((v) => v <= cap);
  return under.length ? Math.max(...under) : Math.min(...values);
}
const runsOf = (r) => (r?.config?.repeats === 1 ? 'one run' : r?.config?.repeats ? `median of ${r.config.repeats} runs` : null);

/** The headline rows: [figure, orderly, baseline, orderly against the baseline]; a row whose data is absent is left out. */
function headlineRows(results) {
  const rows = [];

  const city = results.city;
  if (city?.results?.length) {
    const db = prefer([...new Set(city.results.map((x) => x.db))], ['postgres', 'sqlite', 'mariadb']);
    const rates = [...new Set(city.results.map((x) => x.didWorkPct))].sort((a, b) => a - b);
    const cell = (design, pct) => city.results.find((x) => x.design === design && x.db === db && x.didWorkPct === pct);
    const pairs = rates.map((pct) => ({ pct, o: cell('orderly', pct), t: cell('tracking-bead', pct) })).filter((p) => p.o && p.t);
    if (pairs.length) {
      const baselines = [...new Set(pairs.map((p) => fixed(p.t.dbCommitsPerMin, 1)))];
      const fewer = (p) => (p.o.dbCommitsPerMin === 0 ? (p.t.dbCommitsPerMin > 0 ? 'none' : '—') : `${times(p.t.dbCommitsPerMin / p.o.dbCommitsPerMin)} fewer`);
      rows.push([
        `Database commits per minute in the idle example city (${city.config?.orders?.length ?? '?'} orders, ${fixed(pairs[0].o.firesPerMin, 1)} fires/min, ${DB_NAMES[db] ?? db}) with ${pairs.map((p) => `${p.pct}%`).join(' / ')} of fires doing work`,
        pairs.map((p) => fixed(p.o.dbCommitsPerMin, 2)).join(' / '),
        `${baselines.join(' / ')} (a tracking bead per fire)`,
        pairs.map(fewer).join(' / '),
      ]);
    }
  }

  const cluster = results.cluster;
  if (cluster?.results?.length) {
    const rates = [...new Set(cluster.results.map((x) => x.didWorkPct))].sort((a, b) => a - b);
    const pct = rates[0];
    const cell = (design) => cluster.results.find((x) => x.design === design && x.didWorkPct === pct);
    const boss = cell('pg-boss');
    const engines = ['orderly-postgres', 'orderly-etcd'].map(cell).filter(Boolean);
    if (boss && engines.length) {
      const name = (o) => (o.design === 'orderly-etcd' ? 'etcd' : 'PostgreSQL');
      const fewer = (o) => (o.writesPerMin === 0 ? (boss.writesPerMin > 0 ? 'none' : '—') : `${times(boss.writesPerMin / o.writesPerMin)} fewer`);
      rows.push([
        `Database writes per minute, the example city on ${boss.members} controllers sharing it (${fixed(engines[0].firesPerMin, 1)} fires/min, ${pct}% doing work; ownership on ${engines.map(name).join(' / ')}; ${fixed(cluster.config?.minutes, 0)} min)`,
        engines.map((o) => `${fixed(o.writesPerMin, 2)} (${fixed(o.writesPerNoOpFire ?? o.writesPerFire, 3)} per fire)`).join(' / '),
        `${fixed(boss.writesPerMin, 1)} (pg-boss ${cluster.versions?.pgBoss ?? ''}, ${fixed(boss.writesPerFire, 2)} per fire)`,
        engines.map(fewer).join(' / '),
      ]);
    }
  }

  const http = results.http;
  if (http?.summary) {
    const h = http.summary;
    rows.push([
      `Fire lateness p99 while the orders feed is read at ${fixed(h.reqPerSec, 0)} req/s (${http.config?.ORDERS ?? '?'} exec orders; ${h.bad} answer(s) not 200)`,
      `${fixed(h.loadedP99, 0)} ms`,
      `${fixed(h.baselineP99, 0)} ms (no API load, same run)`,
      h.ratio !== null ? `${h.ratio.toFixed(2)}x` : '—',
    ]);
  }

  const wal = results.wal;
  const floor = walBaselineRow(wal);
  if (floor && wal.results) {
    const top = atOrBelow(wal.results.filter((x) => x.subject === 'orderly').map((x) => x.inFlight), 64);
    const o = wal.results.find((x) => x.subject === 'orderly' && x.inFlight === top);
    if (o) {
      rows.push([
        `Durable WAL appends per second, ${top} in flight (${runsOf(wal)})`,
        fixed(o.opsPerSec, 0),
        `${fixed(floor.opsPerSec, 0)} (the disk's fsync floor: write + fdatasync, one writer)`,
        times(o.opsPerSec / floor.opsPerSec),
      ]);
    }
  }

  const lease = results.lease;
  if (lease?.durable?.length) {
    const top = atOrBelow(lease.durable.filter((x) => x.subject === 'orderly').map((x) => x.inFlight), 64);
    const o = lease.durable.find((x) => x.subject === 'orderly' && x.inFlight === top);
    const s = lease.durable.find((x) => x.subject === 'sqlite' && x.inFlight === top);
    if (o && s) {
      rows.push([
        `Durable lease acquire + release pairs per second (acquire p50), ${top} acquirers (${runsOf(lease)})`,
        `${fixed(o.pairsPerSec, 0)} (${fixed(o.p50us, 0)} µs)`,
        `${fixed(s.pairsPerSec, 0)} (${fixed(s.p50us, 0)} µs), better-sqlite3 with synchronous=FULL`,
        times(o.pairsPerSec / s.pairsPerSec),
      ]);
    }
  }

  const schedule = results.schedule;
  const code = schedule?.results?.find((x) => x.subject === 'code' && x.phase === 'steady');
  if (code) {
    const target = schedule.targets?.find((t) => t.subject === 'code' && /lateness p99/.test(t.check));
    rows.push([
      `Fire lateness p99, ${num(code.orders)} no-op code orders (${num(code.fires)} fires in ${Math.round(code.seconds)} s, ${runsOf(schedule)})`,
      `${fixed(code.latenessP99ms, 0)} ms, ${num(code.auditSinkWrites)} audit writes`,
      '—',
      target ? `goal ${target.goal}` : '—',
    ]);
  }

  const exec = schedule?.results?.find((x) => x.subject === 'exec');
  const execNode = schedule?.results?.find((x) => x.subject === 'exec-node');
  if (exec && execNode) {
    rows.push([
      `Controller CPU per no-op exec fire, ${num(exec.orders)} exec orders (\`exit 100\`, ${num(exec.fires)} fires in ${Math.round(exec.seconds)} s, ${runsOf(schedule)})`,
      `${fixed(exec.cpuUsPerFire, 0)} µs (native spawner)`,
      `${fixed(execNode.cpuUsPerFire, 0)} µs (child_process.spawn)`,
      `${times(execNode.cpuUsPerFire / exec.cpuUsPerFire, 2)} less`,
    ]);
  }
  const fireFloor = schedule?.fireFloor;
  if (exec && fireFloor) {
    rows.push([
      `The same exec fire with no JS at the same pace: one thread, a durable write, a spawn, a pidfd wait (crates/fire-floor, ${runsOf(schedule)})`,
      `${fixed(exec.cpuUsPerFire, 0)} µs (the controller)`,
      `${fixed(fireFloor.fireUs, 0)} µs (the floor)`,
      `${times(exec.cpuUsPerFire / fireFloor.fireUs, 2)} the floor`,
    ]);
    if (exec.jsWakesPerFire != null && fireFloor.nodeWakeUs != null) {
      rows.push([
        `Waking the controller's JS thread at that pace: its wakes per exec fire × what an empty wake of a Node event loop costs (bench/lib/node-wake.mjs, ${runsOf(schedule)})`,
        `${fixed(exec.jsWakesPerFire, 1)} × ${fixed(fireFloor.nodeWakeUs, 0)} µs = ${fixed(exec.jsWakesPerFire * fireFloor.nodeWakeUs, 0)} µs`,
        `${fixed(fireFloor.wakeUs, 0)} µs (a Rust thread's wake, in the floor)`,
        `${times(fireFloor.nodeWakeUs / fireFloor.wakeUs, 1)} a Rust thread's wake`,
      ]);
    }
  }
  const big = schedule?.scale?.find((x) => x.kind === 'code' && x.orders === 100_000);
  const small = schedule?.scale?.find((x) => x.kind === 'code' && x.orders === 1_000);
  if (big && small) {
    rows.push([
      `Start (load + recover + schedule) and reload of 100,000 code orders on one controller (${runsOf(schedule)})`,
      `${fixed(big.startMs, 0)} ms / ${fixed(big.reloadMs, 0)} ms`,
      `${fixed(small.startMs, 0)} ms / ${fixed(small.reloadMs, 0)} ms (1,000 orders)`,
      `${times(big.startMs / small.startMs)} / ${times(big.reloadMs / small.reloadMs)} for 100x the orders`,
    ]);
  }

  const audit = results.audit;
  if (audit?.results?.length) {
    const sink = prefer([...new Set(audit.results.map((x) => x.sink))], ['postgres', 'sqlite', 'mariadb']);
    const top = Math.max(...audit.results.filter((x) => x.sink === sink).map((x) => x.inFlight));
    const w = audit.results.find((x) => x.sink === sink && x.inFlight === top && x.mode === 'writer');
    const p = audit.results.find((x) => x.sink === sink && x.inFlight === top && x.mode === 'per-record');
    if (w && p) {
      rows.push([
        `Audit records per second, ${top} concurrent, group commit (${DB_NAMES[sink] ?? sink}, ${runsOf(audit)})`,
        fixed(w.recordsPerSec, 0),
        `${fixed(p.recordsPerSec, 0)} (one commit per record)`,
        `${times(w.recordsPerSec / p.recordsPerSec)}, ${times(p.txPer1000 / w.txPer1000, 0)} fewer transactions`,
      ]);
    }
  }
  return rows;
}

function summary(run, results) {
  const rows = headlineRows(results);
  const regenerate = (page) => `\`npm run bench:readme\` rewrites this block and ${page} from bench/results/*.json`;
  if (!rows.length) return `No benchmark result is recorded yet: \`npm run bench\` measures them (it needs the databases \`npm test\` needs), and ${regenerate(`[${DOC}](${DOC})`)}.`;
  const minutes = run?.finishedAt ? Math.round((Date.parse(run.finishedAt) - Date.parse(run.date)) / 60_000) : null;
  const intro = run
    ? `Headline figures of the last recorded benchmark run, ${when(run.date)}: \`${run.command}\` on ${machine(run.machine)}.`
    : 'Headline figures; no `npm run bench` run is recorded, so each comes from its own benchmark run, dated in the full report.';
  const elsewhere = run ? notFromRun(run, results) : [];
  const note = elsewhere.length ? ` Not from that run: ${elsewhere.join(', ')} (dated in the full report).` : '';
  const more =
    ` Each figure is against a baseline measured in the same run. The full tables, charts, per-minute series and notes are in [${DOC}](${DOC}).` +
    ` \`npm run bench\` measures everything again${minutes ? ` (${minutes} min here)` : ''} with the databases \`npm test\` needs, and ${regenerate('that page')}.`;
  const cell = (s) => String(s).replaceAll('|', '\\|');
  return [
    intro + note + more,
    '',
    '| figure | orderly | baseline | orderly against it |',
    '| --- | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

/** Replaces what is between the named start marker and the next end marker. */
function splice(text, file, name, body) {
  const s = text.indexOf(start(name));
  if (s < 0) return null;
  const from = s + start(name).length;
  const e = text.indexOf(END, from);
  const nested = text.indexOf('<!-- bench:start ', from);
  if (e < 0 || (nested >= 0 && nested < e)) throw new Error(`${file}: ${start(name)} has no ${END} before the next block`);
  return `${text.slice(0, from)}\n\n${body}\n\n${text.slice(e)}`;
}

const run = readResult('run');
const results = Object.fromEntries(sections.map(([name]) => [name, readResult(name)]));

const readmePath = `${root}README.md`;
const readme = splice(readFileSync(readmePath, 'utf8'), 'README.md', 'summary', summary(run, results));
// A summary with no place in the README would silently never be shown.
if (readme === null) throw new Error(`README.md has no ${start('summary')} ... ${END}: add the marker pair where the Performance summary belongs`);
mkdirSync(`${root}docs`, { recursive: true });
writeFileSync(`${root}${DOC}`, benchmarksDoc(run, results));
writeFileSync(readmePath, readme);

const shown = sections.filter(([name]) => results[name]?.report).map(([name]) => name);
const from = shown.length ? `${shown.length} result file(s) (${shown.join(', ')})${run ? ' and run.json' : ''}` : 'no result file';
console.log(`${DOC}: rewritten from ${from}; README.md: performance summary rewritten`);
