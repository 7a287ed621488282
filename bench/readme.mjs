// Renders the README's performance section from bench/results/*.json: a
// header naming the run (date, machine, the disk's fsync floor, the command),
// then for each benchmark its chart(s) and the report it printed, verbatim.
// Each part lives between `<!-- bench:start <name> -->` and
// `<!-- bench:end -->` in README.md, so prose around them is kept; nothing
// inside them is typed by hand. `npm run bench` runs this last; run it alone
// after any bench:<name>.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { charts } from './charts.mjs';
import { walBaselineRow } from './lib/floor.mjs';
import { num } from './lib/table.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const END = '<!-- bench:end -->';
const start = (name) => `<!-- bench:start ${name} -->`;

const sections = [
  ['city', "The seed's idle city: orderly against the tracking-bead design (`npm run bench:city`)"],
  ['wal', 'Durable appends: the WAL against the fsync floor, SQLite and node fs (`npm run bench:wal`)'],
  ['lease', 'Single-flight leases: in memory, durable, against SQLite and PostgreSQL (`npm run bench:lease`)'],
  ['schedule', 'Scheduling: fire lateness and controller CPU per no-op fire (`npm run bench:schedule`)'],
  ['audit', 'Audit writes: group commit against one commit per record (`npm run bench:audit`)'],
];

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

function header(run, results) {
  const shared = 'The machine is shared: each table says how many runs its figures are the median of, and every ratio is against a baseline measured in the same run.';
  if (run) {
    const lines = [
      `Measured ${when(run.date)} with \`${run.command}\` on ${machine(run.machine, { rustc: true })}.`,
      `Disk fsync floor in that run: ${floorText(run.fsyncFloor)}, measured by ${run.fsyncFloor.measuredBy}.`,
    ];
    const elsewhere = sections.filter(([name]) => results[name] && !inRun(run, results[name])).map(([name]) => name);
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
  const parts = [`### ${title}`, ''];
  if (!r?.report) {
    parts.push(`Not measured yet: \`npm run bench:${name}\` writes \`bench/results/${name}.json\`.`);
    return parts.join('\n');
  }
  const json = `(JSON: \`bench/results/${name}.json\`)`;
  parts.push(
    inRun(run, r)
      ? `Part of the run above, ${when(r.date)} ${json}.`
      : `Measured ${when(r.date)} on ${machine(r.machine)} with \`${r.command}\` ${json}.`,
    '',
  );
  for (const chart of charts.filter((c) => c.source === name)) {
    if (chart.applies(r) && existsSync(`${root}bench/charts/${chart.name}.svg`)) parts.push(`![${chart.alt}](bench/charts/${chart.name}.svg)`, '');
  }
  parts.push('```', r.report.trimEnd(), '```');
  return parts.join('\n');
}

/** Replaces what is between the named start marker and the next end marker. */
function splice(readme, name, body) {
  const s = readme.indexOf(start(name));
  if (s < 0) return null;
  const from = s + start(name).length;
  const e = readme.indexOf(END, from);
  const nested = readme.indexOf('<!-- bench:start ', from);
  if (e < 0 || (nested >= 0 && nested < e)) throw new Error(`README.md: ${start(name)} has no ${END} before the next block`);
  return `${readme.slice(0, from)}\n\n${body}\n\n${readme.slice(e)}`;
}

const run = readResult('run');
const results = Object.fromEntries(sections.map(([name]) => [name, readResult(name)]));

const readmePath = `${root}README.md`;
let readme = readFileSync(readmePath, 'utf8');
const blocks = [['run', header(run, results)], ...sections.map(([name, title]) => [name, section(name, title, run, results[name])])];
const missing = [];
for (const [name, body] of blocks) {
  const next = splice(readme, name, body);
  if (next === null) missing.push(name);
  else readme = next;
}
// A result with no place in the README would silently never be shown.
const unplaced = missing.filter((name) => name === 'run' || results[name]);
if (unplaced.length) throw new Error(`README.md has no ${unplaced.map(start).join(', ')}: add the marker pair(s) where the block belongs`);
writeFileSync(readmePath, readme);
const shown = sections.filter(([name]) => results[name]?.report).map(([name]) => name);
console.log(`README.md: performance section rewritten from ${shown.length} result file(s) (${shown.join(', ')})${run ? ' and run.json' : ''}`);
