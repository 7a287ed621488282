// Wall time the calling thread spends inside NativeSpawner.start. posix_spawn
// returns only once the child has started its exec (a vfork); in a burst it
// runs on the spawner's own threads, so the controller's JS thread only
// queues the body (its environment converted to C strings) and is told of
// its pid later. A body after a 5 ms lull is spawned on the calling thread.
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot } from './orderly.mjs';

/**
 * Times every start of the repository's binding from now on; the returned
 * totals grow as bodies start. With ORDERLY_ENTRY naming another build, that
 * build's binding is not this one and `calls` stays 0.
 */
export function timeSpawns() {
  const { NativeSpawner } = createRequire(import.meta.url)(path.join(repoRoot, 'index.cjs'));
  const start = NativeSpawner.prototype.start;
  const totals = { ms: 0, calls: 0 };
  NativeSpawner.prototype.start = function timedStart(...args) {
    const t = performance.now();
    try {
      return start.apply(this, args);
    } finally {
      totals.ms += performance.now() - t;
      totals.calls++;
    }
  };
  return totals;
}
