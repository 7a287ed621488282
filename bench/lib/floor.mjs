// The fsync floor (crates/fsync-floor): write + fdatasync per record, the
// cost orderly's group commit is measured against. bench/wal.mjs runs it as
// its baseline subject and bench/all.mjs around the whole run; both go
// through here so the two floors are the same measurement.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
let built;

/** The binary: FSYNC_FLOOR_BIN, or target/release/fsync-floor rebuilt first (a no-op when up to date). */
export function floorBinary() {
  built ??= build();
  return built;
}

function build() {
  if (process.env.FSYNC_FLOOR_BIN) return process.env.FSYNC_FLOOR_BIN;
  const bin = path.join(process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, 'target'), 'release', 'fsync-floor');
  // Rebuilding keeps the floor honest after edits to its source.
  const cargo = spawnSync('cargo', ['build', '--release', '--quiet', '-p', 'fsync-floor'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  if (cargo.status !== 0 && !existsSync(bin)) throw new Error('cannot measure the fsync floor: `cargo build -p fsync-floor` failed and no binary exists (FSYNC_FLOOR_BIN names one)');
  if (cargo.status !== 0) console.error(`warning: cargo build -p fsync-floor failed; using the existing ${bin}`);
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

/** bench:wal's baseline row (the floor, one writer) in its parsed result, or null if it has none with a figure. */
export function walBaselineRow(wal) {
  const row = wal?.results?.find((r) => r.subject === wal.baseline?.subject && r.inFlight === wal.baseline?.inFlight);
  return row && typeof row.opsPerSec === 'number' ? row : null;
}
