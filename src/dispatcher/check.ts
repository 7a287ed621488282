import { spawn } from 'node:child_process';
import { setLongTimeout } from './long-timeout.js';

/**
 * Runs a condition order's `check` command: true when it exits 0 within the
 * timeout. Output is discarded; the check runs in its own process group so a
 * timeout ends all of it: SIGTERM, then SIGKILL after `graceMs`, as Gas City.
 */
export function runCheck(command: string, opts: { cwd: string; env: Record<string, string>; timeoutMs: number; graceMs?: number }): Promise<boolean> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn('/bin/sh', ['-c', command], { cwd: opts.cwd, env: opts.env, stdio: 'ignore', detached: true });
    } catch {
      resolve(false);
      return;
    }
    const signal = (sig: NodeJS.Signals): void => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // Already gone.
      }
    };
    const timer = setLongTimeout(() => {
      signal('SIGTERM');
      // Not cleared when the shell exits: a child that ignored SIGTERM still goes.
      setTimeout(() => signal('SIGKILL'), opts.graceMs ?? 2_000).unref();
    }, opts.timeoutMs);
    child.on('error', () => {
      timer.clear();
      resolve(false);
    });
    child.on('exit', (code) => {
      timer.clear();
      resolve(code === 0);
    });
  });
}
