// The floors orderly is measured against, each a small Rust binary:
// - the fsync floor (crates/fsync-floor): write + fdatasync per record, the
//   cost orderly's group commit is measured against. bench/wal.mjs runs it as
//   its baseline subject and bench/all.mjs around the whole run; both go
//   through here so the two floors are the same measurement.
// - the fire floor (crates/fire-floor): one paced exec fire with no JS (a
//   durable record, a spawn, a pidfd wait), what bench:schedule's CPU per
//   exec fire is set against.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const built = new Map();

/** The fsync floor's binary: FSYNC_FLOOR_BIN, or target/release/fsync-floor rebuilt first (a no-op when up to date). */
export function floorBinary() {
  return binary('fsync-floor', 'FSYNC_FLOOR_BIN');
}

/** The fire floor's binary: FIRE_FLOOR_BIN, or target/release/fire-floor rebuilt first. */
export function fireFloorBinary() {
  return binary('fire-floor', 'FIRE_FLOOR_BIN');
}

function binary(crate, envName) {
  if (!built.has(crate)) built.set(crate, build(crate, envName));
  return built.get(crate);
}

function build(crate, envName) {
  if (process.env[envName]) return process.env[envName];
  const bin = path.join(process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, 'target'), 'release', crate);
  // Rebuilding keeps the floor honest after edits to its source.
  const cargo = spawnSync('cargo', ['build', '--release', '--quiet', '-p', crate], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  if (cargo.status !== 0 && !existsSync(bin)) throw new Error(`cannot measure the ${crate}: \`cargo build -p ${crate}\` failed and no binary exists (${envName} names one)`);
  if (cargo.status !== 0) console.error(`warning: cargo build -p ${crate} failed; using the existing ${bin}`);
  return bin;
}

/**
 * One measurement into `file`: { ops, seconds, opsPerSec, p50us, p99us }.
 * `preallocate` (bytes) zero-fills and fsyncs the file first, as orderly's segments are.
 */
export async function runFloor({ file, writers, seconds, warmupSeconds, recordBytes, preallocate }) {
  const args = [
    '--file', file,
    '--writers', String(writers),
    '--seconds', String(seconds),
    '--warmup-seconds', String(warmupSeconds),
    '--record-bytes', String(recordBytes),
    ...(preallocate ? ['--preallocate', String(preallocate), '--prealloc-method', 'zero'] : []),
  ];
  const { stdout } = await promisify(execFile)(floorBinary(), args);
  return JSON.parse(stdout);
}

/**
 * One fire-floor measurement at `rate` fires/s, its parts run one after the
 * other for seconds/4 each: { wake, durable, spawn, fire }, each
 * { fires, cpuUsPerFire, childrenCpuUsPerFire }, and cpuidUs, what one CPUID
 * instruction costs here (null off x86-64).
 */
export async function runFireFloor({ dir, rate, seconds }) {
  const { stdout } = await promisify(execFile)(fireFloorBinary(), ['--dir', dir, '--rate', String(rate), '--seconds', String(seconds)]);
  const { phases, cpuidUs } = JSON.parse(stdout);
  return { ...Object.fromEntries(phases.map(({ phase, ...figures }) => [phase, figures])), cpuidUs: cpuidUs ?? null };
}

/**
 * What one wake-up of an idle Node event loop costs, at `rate` wakes/s for
 * `seconds` (after 2 s of warm-up), in a process of its own:
 * { wakes, cpuUsPerWake }. Set beside the fire floor's own wake (a Rust
 * thread's sleep), it prices each time the controller's JS thread is woken.
 */
export async function runNodeWakeFloor({ rate, seconds }) {
  const script = fileURLToPath(new URL('./node-wake.mjs', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [script, String(rate), String(seconds), '2']);
  return JSON.parse(stdout);
}

/** bench:wal's baseline row (the floor, one writer) in its parsed result, or null if it has none with a figure. */
export function walBaselineRow(wal) {
  const row = wal?.results?.find((r) => r.subject === wal.baseline?.subject && r.inFlight === wal.baseline?.inFlight);
  return row && typeof row.opsPerSec === 'number' ? row : null;
}
