// Helpers for the system-level crash tests: order files, the bodies' own logs
// (the witness orderly cannot edit), the controller CLI as a child process
// that can be SIGKILLed at any moment, and the audit records left behind.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';

export const cliPath = join(repoRoot, 'dist', 'cli.js');

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Uniform in [min, max). */
export const uniform = (min: number, max: number) => min + Math.random() * (max - min);

// ------------------------------------------------------------ the body

/** One cooldown order file running `exec`. */
export function writeOrder(ordersDir: string, name: string, o: { exec: string; intervalMs: number; timeoutMs: number }): void {
  mkdirSync(ordersDir, { recursive: true });
  writeFileSync(
    join(ordersDir, `${name}.toml`),
    ['[order]', 'trigger = "cooldown"', `interval = "${o.intervalMs}ms"`, `timeout = "${o.timeoutMs}ms"`, `exec = "${o.exec}"`, ''].join('\n'),
  );
}

/** Polls `check` every 50 ms; false if it never held within `ms`. */
export async function waitUntil(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

// ------------------------------------------------------------ the body log

export interface BodyRun {
  scopedName: string;
  fireId: string;
  fence: bigint;
  start: number;
  /** ORDERLY_FIRED_AT: the acquire time, when the body logged it. */
  firedAt?: number;
  end?: number;
  code?: number;
}

/** Every run the bodies logged, per scoped order, in log (= start) order. */
export function readBodyLogs(logDir: string): Map<string, BodyRun[]> {
  const out = new Map<string, BodyRun[]>();
  if (!existsSync(logDir)) return out;
  for (const file of readdirSync(logDir).filter((f) => f.endsWith('.log')).sort()) {
    const runs: BodyRun[] = [];
    const byId = new Map<string, BodyRun>();
    const text = readFileSync(join(logDir, file), 'utf8');
    for (const [i, line] of text.split('\n').entries()) {
      if (line === '') continue;
      const f = line.split(' ');
      const where = `${file}:${i + 1}: ${JSON.stringify(line)}`;
      if (f[0] === 'start' && (f.length === 5 || f.length === 6)) {
        const run: BodyRun = { scopedName: f[1]!, fireId: f[2]!, fence: BigInt(f[3]!), start: Number(f[4]), ...(f[5] ? { firedAt: Number(f[5]) } : {}) };
        if (byId.has(run.fireId)) throw new Error(`${where}: fireId started twice`);
        if (!Number.isFinite(run.start)) throw new Error(`${where}: bad time`);
        byId.set(run.fireId, run);
        runs.push(run);
      } else if (f[0] === 'end' && f.length === 6) {
        const run = byId.get(f[2]!);
        if (!run) throw new Error(`${where}: end without a start`);
        if (run.end !== undefined) throw new Error(`${where}: ended twice`);
        run.end = Number(f[4]);
        run.code = Number(f[5]);
      } else {
        throw new Error(`${where}: unreadable line`);
      }
    }
    if (runs.length > 0) out.set(runs[0]!.scopedName, runs);
  }
  return out;
}

/** Polls the logs until every started body has an `end` line; returns the open ones left at the deadline. */
export async function waitForBodies(logDir: string, timeoutMs: number): Promise<BodyRun[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = [...readBodyLogs(logDir).values()].flat().filter((r) => r.end === undefined);
    if (open.length === 0 || Date.now() > deadline) return open;
    await sleep(100);
  }
}

// ------------------------------------------------------------ the controller

export interface ControllerRun {
  child: ChildProcess;
  /** Parsed --json lines so far. */
  events: Array<Record<string, unknown>>;
  stderr: () => string;
  /** Resolves once the process has exited and its stdout is read (or 2 s after exit). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `node dist/cli.js run <ordersDir> --state <state> --json ...extra`, auditing
 * to `<state>/audit.jsonl` unless `opts.audit` names another sink;
 * `opts.crashPoint` arms ORDERLY_CRASH_POINT (`name` or `name@n`).
 */
export function startController(ordersDir: string, state: string, extra: string[] = [], opts: { audit?: string; crashPoint?: string; env?: NodeJS.ProcessEnv } = {}): ControllerRun {
  const audit = opts.audit ?? `jsonl:${join(state, 'audit.jsonl')}`;
  const child = spawn(process.execPath, [cliPath, 'run', ordersDir, '--state', state, '--audit', audit, '--json', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env, ORDERLY_CRASH_POINT: opts.crashPoint ?? '' },
  });
  const events: Array<Record<string, unknown>> = [];
  let buf = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // A line cut by SIGKILL mid-write: only the last one can be.
        events.push({ type: 'unparsed', line });
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    let status: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    child.once('close', (code, signal) => resolve(status ?? { code, signal }));
    child.once('exit', (code, signal) => {
      status = { code, signal };
      // stdout is ours alone (bodies get their own pipes), so 'close' follows at once; never hang on it.
      setTimeout(() => resolve(status!), 2_000).unref();
    });
  });
  return { child, events, stderr: () => err, exited };
}

// ------------------------------------------------------------ audit records

export interface AuditLine {
  fireId: string;
  scopedName: string;
  outcome: string;
  fence: string;
  exitCode: number | null;
}

export function readAudit(path: string): AuditLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditLine);
}
