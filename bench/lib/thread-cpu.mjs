// CPU of each of this process's threads, from /proc/self/task/*/stat, grouped
// by role: where a controller's own CPU goes (the JS thread, V8's helpers,
// the lane's native threads). Ticks of 10 ms each here, so a figure is only
// as fine as a few hundred fires' worth of time.
import { readdirSync, readFileSync } from 'node:fs';
import { ticksPerSecond } from './children-cpu.mjs';

/** Thread name → role: the native threads are named by crates/lane, crates/spawn and crates/wal. */
function role(tid, name) {
  if (tid === String(process.pid)) return 'js';
  if (name === 'orderly-lane') return 'lane';
  if (name.startsWith('orderly-spawn')) return 'spawn';
  if (name === 'orderly-reaper') return 'reaper';
  if (name.startsWith('orderly-wal')) return 'wal';
  // V8's platform workers (GC, compiler) and libuv's pool: Node names them all `node`.
  return name === 'node' ? 'v8+uv' : 'other';
}

/** Microseconds of CPU per thread id, with its role; empty off Linux. */
export function threadCpu() {
  const out = new Map();
  let tids;
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      // After the name: state is [0], utime [11], stime [12].
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { role: role(tid, name), us: ((Number(f[11]) + Number(f[12])) * 1e6) / ticksPerSecond });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** CPU ms by role between two threadCpu() snapshots; threads that ended in between are not counted. */
export function cpuByRole(before, after) {
  const ms = {};
  for (const [tid, { role: r, us }] of after) ms[r] = (ms[r] ?? 0) + (us - (before.get(tid)?.us ?? 0)) / 1000;
  return ms;
}
