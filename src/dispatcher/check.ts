import { spawn } from 'node:child_process';

/**
 * Runs a condition order's `check` command: true when it exits 0 within the
 * timeout. Output is discarded; the check runs in its own process group so a
 * timeout kills all of it.
 */
export function runCheck(command: string, opts: { cwd: string; env: Record<string, string>; timeoutMs: number }): Promise<boolean> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn('/bin/sh', ['-c', command], { cwd: opts.cwd, env: opts.env, stdio: 'ignore', detached: true });
    } catch {
      resolve(false);
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, opts.timeoutMs);
    child.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}
