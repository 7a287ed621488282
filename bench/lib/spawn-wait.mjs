// Wall time the calling thread spends inside NativeSpawner.spawn. posix_spawn
// returns once the child has started its exec (a vfork), so when thousands of
// bodies start at once, the controller's one JS thread waits there for each in
// turn, however many cores could run the children.
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot } from './orderly.mjs';

/**
 * Times every spawn of the repository's binding from now on; the returned
 * totals grow as bodies start. With ORDERLY_ENTRY naming another build, that
 * build's binding is not this one and `calls` stays 0.
 */
export function timeSpawns() {
  const { NativeSpawner } = createRequire(import.meta.url)(path.join(repoRoot, 'index.cjs'));
  const spawn = NativeSpawner.prototype.spawn;
  const totals = { ms: 0, calls: 0 };
  NativeSpawner.prototype.spawn = function timedSpawn(...args) {
    const t = performance.now();
    try {
      return spawn.apply(this, args);
    } finally {
      totals.ms += performance.now() - t;
      totals.calls++;
    }
  };
  return totals;
}
