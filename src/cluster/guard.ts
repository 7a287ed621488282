import { type ChildProcess, spawn } from 'node:child_process';

/**
 * The body guard: a small process beside each cluster member that kills the
 * member's bodies when the member can no longer vouch for its ownership.
 *
 * A controller that is paused (SIGSTOP, a stalled VM, a long GC) cannot kill
 * anything, yet its bodies run on and the engine hands its shards to another
 * member once the lease ends: two bodies of one order. So the member tells
 * the guard, after every confirmation, until when its ownership holds (a
 * CLOCK_MONOTONIC instant: the guard shares the host's clock, not the
 * member's event loop). Past that instant, or when the member dies (its
 * stdin closes), the guard kills every process that carries the member's id
 * in its environment (ORDERLY_MEMBER), whatever its process group, and keeps
 * looking until the member vouches again.
 */
const GUARD_SOURCE = String.raw`
const fs = require('node:fs');
const member = process.argv[1];
const needle = Buffer.from('\0ORDERLY_MEMBER=' + member + '\0');
let until = 0n;
let quietScans = 0;
let nextScan = 0n;
let buffered = '';
function killAll() {
  let found = 0;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let env;
    try { env = fs.readFileSync('/proc/' + name + '/environ'); } catch { continue; }
    const padded = Buffer.concat([Buffer.from([0]), env]);
    if (padded.indexOf(needle) < 0) continue;
    found++;
    try {
      const stat = fs.readFileSync('/proc/' + name + '/stat', 'utf8');
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgid > 1 && pgid !== process.pid) process.kill(-pgid, 'SIGKILL');
    } catch {}
    try { process.kill(Number(name), 'SIGKILL'); } catch {}
  }
  return found;
}
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (line.startsWith('until ')) { until = BigInt(line.slice(6)); quietScans = 0; }
  }
});
process.stdin.on('end', () => { killAll(); process.exit(0); });
process.on('SIGTERM', () => {});
setInterval(() => {
  const now = process.hrtime.bigint();
  if (now <= until || now < nextScan) return;
  // Past the deadline: kill, and keep looking (a body spawned in the instant before a pause shows up late).
  // Nothing found ten times in a row: look once a second instead of ten times.
  quietScans = killAll() > 0 ? 0 : quietScans + 1;
  nextScan = now + (quietScans >= 10 ? 1_000_000_000n : 0n);
}, 100);
`;

export class BodyGuard {
  readonly #child: ChildProcess;
  #exited = false;

  constructor(memberId: string, onExit: (code: number | null, signal: NodeJS.Signals | null) => void) {
    this.#child = spawn(process.execPath, ['-e', GUARD_SOURCE, memberId], { stdio: ['pipe', 'ignore', 'inherit'] });
    this.#child.stdin!.on('error', () => undefined);
    this.#child.on('exit', (code, signal) => {
      this.#exited = true;
      onExit(code, signal);
    });
  }

  /** Bodies may live until `deadlineMs` from now (measured on the monotonic clock), no longer. */
  vouch(deadlineMs: number): void {
    if (this.#exited) return;
    const until = process.hrtime.bigint() + BigInt(Math.max(0, Math.floor(deadlineMs))) * 1_000_000n;
    this.#child.stdin!.write(`until ${until}\n`);
  }

  /** From now on every body of the member is killed. */
  revoke(): void {
    if (!this.#exited) this.#child.stdin!.write('until 0\n');
  }

  /** Stops the guard; with `kill`, the bodies go with it (stdin's end). */
  async close(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.stdin!.end();
    await exited;
  }
}
