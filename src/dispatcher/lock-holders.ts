import { readdirSync, readlinkSync } from 'node:fs';

/**
 * Every process that holds `lockPath` open (Linux /proc), other than this
 * one: a body that left a daemon behind (`setsid cmd &`) hands it the run
 * lock, and signalling the body's process group does not reach it.
 */
export function lockHolders(lockPath: string): number[] {
  const out: number[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // Gone, or not ours to look at.
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === lockPath) {
          out.push(Number(pid));
          break;
        }
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return out;
}

/** SIGKILLs every process still holding the run lock; returns their pids. */
export function killLockHolders(lockPath: string): number[] {
  const pids = lockHolders(lockPath);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return pids;
}
