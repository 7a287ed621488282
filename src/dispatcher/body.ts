import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, closeSync, fstatSync, constants as fsConstants, lstatSync, openSync, readFileSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { open, readdir, readFile, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Outcome } from '../orders/types.js';
import { envEntries, type LayeredEnv } from './layered-env.js';
import { closeQuiet } from './run-slots.js';
import { type LongTimeout, setLongTimeout } from './long-timeout.js';
import { classifyExit, parseStatusFile, type StatusFromFile } from './outcome.js';
import { lockRecord } from './run-lock.js';
import { type ChildExit, nativeSpawner, type RunLockHandoff, signalName } from './spawner.js';

/**
 * Running an exec body (DESIGN.md "A fire, end to end", step 3): `sh -c`, its
 * own process group, a timeout that takes the whole group down, a bounded
 * output tail. Never throws and never rejects: every way a body can go wrong
 * is a `failed` or `timeout` result, because the caller must always get to
 * write the audit record and release the lease.
 */

export interface RunBodyOptions {
  command: string;
  cwd: string;
  /** The child's environment (laid over `baseEnv` when given): nothing of process.env is merged in here. */
  env: Record<string, string>;
  /** What the body inherits, shared with other bodies (the controller's environment); `env` adds to it and wins over it. */
  baseEnv?: LayeredEnv;
  /** Infinity or 0 disables the timeout. */
  timeoutMs: number;
  /** SIGTERM → SIGKILL; default 5000. */
  graceMs?: number;
  /** Where the body may write `no-op` / `did-work` (the caller names it in env as ORDERLY_STATUS_FILE). */
  statusFile: string;
  /** Bytes of combined stdout+stderr kept; default 64 KiB. */
  tailBytes?: number;
  noOpExitCodes: readonly number[];
  /** Exit 0 with no output (whitespace aside) is a no-op (`no_op_when_silent`). */
  noOpWhenSilent?: boolean;
  /** Default '/bin/sh'. */
  shell?: string;
  /**
   * Inherited by the body as fd 3, 4, …: the controller passes its locked
   * run-lock fd so a restarted controller can tell the body still runs.
   */
  extraFds?: number[];
  /**
   * The locked run-lock descriptor, inherited after `extraFds`. runBody owns
   * it from the call: once the body runs, the lock's record gets the body's
   * group and deadline (what a controller adopting it after a crash needs),
   * and this copy is closed, so that the body alone holds the lock.
   */
  lock?: RunLockHandoff;
  /**
   * Run files, for bodies that must outlive the controller: output goes to
   * `output` instead of pipes (a pipe whose reader died kills a writing body
   * with SIGPIPE), and a wrapper records the exit status in `exit`, so a
   * restarted controller that adopts the body learns how it ended.
   */
  runFiles?: RunFiles;
  /**
   * 'native' (the default where it runs): posix_spawn and one reaping thread
   * (crates/spawn), for bodies with run files. 'node': child_process.spawn,
   * as bodies without run files always are.
   */
  spawner?: 'native' | 'node';
}

/**
 * A run's output and exit status files. The controller reuses them from run
 * to run (see RunSlots), so the exit file may hold an earlier run's status
 * until the wrapper writes this one's: a status counts only with this run's
 * tag beside it.
 */
export interface RunFiles {
  output: string;
  exit: string;
  /** Written after the exit status: the run's fire id. */
  tag: string;
}

/**
 * Both wrappers record the body's exit status, then end as the body did.
 * The status is written in place, over the slot's earlier one and padded to
 * one width: truncating a file that holds data cost the body ~0.1 ms of
 * CPU per fire on ext4 (it frees the block and logs the inode as an
 * orphan). No temp file and `mv` either: the file is read only once the
 * wrapper has let go of the run lock, so a reader never sees it half
 * written, and a wrapper killed before its write leaves the earlier run's
 * tag, which reads as "no exit status". A body killed by a signal shows as
 * 128+n; the wrapper re-raises that signal on itself, so the runner still
 * sees a signal death, as it would without the wrapper. `$$` is the group
 * leader's pid in both, as without a wrapper.
 */
const RECORD_EXIT = 'umask 077; printf "%-40s" "$rc $ORDERLY_EXIT_TAG" 1<> "$ORDERLY_EXIT_FILE"';
const RERAISE = 'if [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then trap - EXIT; kill "-$((rc - 128))" "$$"; fi';

/**
 * The body runs in the wrapper's own shell and an EXIT trap records its
 * status: a process less per fire than a subshell (~0.3 ms of CPU here, a
 * third of what a no-op body cost). `exit` in the body ends the shell
 * through the trap; a signal that kills the shell skips it, as it kills the
 * subshell's parent too.
 */
const TRAP_WRAPPER = `trap 'rc=$(($? & 255)); ${RECORD_EXIT}; ${RERAISE}' EXIT; eval "$ORDERLY_BODY"`;

/**
 * For bodies that could undo the trap: the body in a subshell (`eval` in a
 * fork of this shell, not a second `sh -c`), then the status.
 */
const SUBSHELL_WRAPPER = `(eval "$ORDERLY_BODY"); rc=$?; ${RECORD_EXIT}; ${RERAISE}; exit "$rc"`;

/**
 * Body text that could take the trap wrapper's EXIT trap, replace its shell
 * (exec), change its options (set -e/-u/-x would apply to the trap), or run
 * code the text does not show (eval, `.`, source, functions, aliases).
 * Matching too much only costs the subshell.
 */
const UNDOES_TRAP = /\b(?:exec|trap|set|eval|source|alias|readonly|command|builtin|ORDERLY_EXIT_\w*)\b|(?:^|[\s;&|(`])\.(?=\s)|\w\s*\(\s*\)/;

/** The wrapper `sh -c` runs for a body with run files. */
export function exitWrapper(command: string): string {
  return UNDOES_TRAP.test(command) ? SUBSHELL_WRAPPER : TRAP_WRAPPER;
}

export interface BodyResult {
  outcome: Outcome;
  reason?: string;
  exitCode: number | null;
  signal: string | null;
  /** Epoch ms. */
  startedAt: number;
  /** Epoch ms at the shell's exit (leftover processes may be cleaned up after). */
  endedAt: number;
  /** Monotonic, whole ms. */
  durationMs: number;
  /** The last `tailBytes` bytes of stdout and stderr, interleaved in arrival order. */
  outputTail: string;
  /** Everything the body printed, counted. */
  outputBytes: number;
  statusFromFile?: StatusFromFile;
}

export interface RunningBody {
  /**
   * The body's pid, also its process group id, once it runs (the native
   * spawner starts it on a thread of its own); undefined when it could not
   * be started.
   */
  started: Promise<number | undefined>;
  done: Promise<BodyResult>;
}

export const DEFAULT_GRACE_MS = 5_000;
export const DEFAULT_TAIL_BYTES = 64 * 1024;
/**
 * How long to wait for stdout/stderr to reach EOF once the group is gone. Only
 * a process that left the group (setsid) can still hold them; its output is
 * not the body's business and must not keep the run open.
 */
export const DRAIN_MS = 250;
const GROUP_POLL_MS = 50;
/** A status file is one word; a bigger one is a script bug, not a status. */
const STATUS_FILE_MAX_BYTES = 1024;

/**
 * The last `limit` bytes of a stream, plus a count of all of them. Whole
 * chunks are dropped from the front as soon as the rest still covers
 * `limit`, so at most `limit` + one chunk is held, whatever the body prints.
 */
export class OutputTail {
  private chunks: Buffer[] = [];
  private held = 0;
  private total = 0;

  readonly limit: number;

  constructor(limit: number) {
    this.limit = Math.max(0, Math.floor(limit));
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (chunk.length >= this.limit) {
      // Copy: a subarray would pin the whole chunk.
      this.chunks = [Buffer.from(chunk.subarray(chunk.length - this.limit))];
      this.held = this.limit;
      return;
    }
    this.chunks.push(chunk);
    this.held += chunk.length;
    while (this.chunks.length > 1 && this.held - this.chunks[0]!.length >= this.limit) {
      this.held -= this.chunks.shift()!.length;
    }
  }

  /** A tail read back from a file: `chunk` is its end, `total` the file's size. */
  pushCounted(chunk: Buffer, total: number): void {
    this.push(chunk);
    this.total = total;
  }

  get totalBytes(): number {
    return this.total;
  }

  get heldBytes(): number {
    return this.held;
  }

  text(): string {
    const all = Buffer.concat(this.chunks, this.held);
    let start = Math.max(0, all.length - this.limit);
    if (this.total > all.length - start) {
      // The cut may fall inside a UTF-8 sequence: drop its continuation bytes rather than print U+FFFD.
      for (let i = 0; i < 3 && start < all.length && (all[start]! & 0xc0) === 0x80; i++) start++;
    }
    return all.toString('utf8', start);
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Why `cwd` cannot be a working directory, or undefined if it can. */
function cwdProblem(cwd: string): string | undefined {
  try {
    if (!statSync(cwd).isDirectory()) return `cwd is not a directory: ${cwd}`;
    accessSync(cwd, fsConstants.X_OK);
    return undefined;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return `cwd does not exist: ${cwd}`;
    if (code === 'ENOTDIR') return `cwd is not a directory: ${cwd}`;
    return `cwd not accessible: ${cwd} (${code ?? String(err)})`;
  }
}

/** Node reports a missing cwd as ENOENT of the shell; tell the two apart. */
function describeSpawnError(err: unknown, shell: string, cwd: string): string {
  const code = errnoCode(err);
  const cwdNow = code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR' ? cwdProblem(cwd) : undefined;
  if (cwdNow !== undefined) return cwdNow;
  if (code === 'ENOENT') return `shell not found: ${shell}`;
  if (code === 'EACCES') return `shell not executable: ${shell} (EACCES)`;
  const message = err instanceof Error ? err.message : String(err);
  return `cannot start ${shell}: ${message}`;
}

/** ESRCH: the group is gone. EPERM: a member changed uid; nothing more we can do. */
function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ignored on purpose, see above
  }
}

/**
 * Whether a process of group `pgid` still runs. kill(2) counts zombies as
 * members, and an orphan is only a zombie until pid 1 reaps it (seconds, on
 * some container inits), so /proc decides. Without /proc, assume it runs:
 * the caller then kills the group, which is harmless.
 */
async function groupHasLiveMember(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    return errnoCode(err) !== 'ESRCH';
  }
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return true;
  }
  const pids = entries.filter((name) => /^\d+$/.test(name));
  for (let i = 0; i < pids.length; i += 64) {
    const states = await Promise.all(
      pids.slice(i, i + 64).map(async (pid) => {
        try {
          const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
          // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          return Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X';
        } catch {
          return false; // exited while we looked
        }
      }),
    );
    if (states.includes(true)) return true;
  }
  return false;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface StatusRead {
  status?: StatusFromFile;
  ignored?: string;
}

/** Reads and deletes the status file. Absent is normal; anything unusable is reported, never fatal. */
/** Reads the status file; removes it unless `keep` (run files are removed by their owner). */
async function takeStatusFile(path: string, keep = false): Promise<StatusRead> {
  let text: string;
  try {
    // Most bodies write none: one stat, not an open that fails on the thread pool.
    if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return {};
    const file = await open(path, 'r');
    try {
      const stat = await file.stat();
      if (!stat.isFile()) return { ignored: 'status file ignored: not a regular file' };
      if (stat.size > STATUS_FILE_MAX_BYTES) return { ignored: `status file ignored: ${stat.size} bytes` };
      const buffer = Buffer.alloc(STATUS_FILE_MAX_BYTES);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      text = buffer.toString('utf8', 0, bytesRead);
    } finally {
      await file.close();
      if (!keep) await unlink(path).catch(() => undefined);
    }
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return {};
    return { ignored: `status file ignored: unreadable (${code ?? String(err)})` };
  }
  const status = parseStatusFile(text);
  if (status !== undefined) return { status };
  return { ignored: `status file ignored: ${JSON.stringify(text.trim().slice(0, 40))} is neither "no-op" nor "did-work"` };
}

/** A body that could not be started: a failed run with the reason, recorded as such, never a crash. */
export function notStarted(spawnError: string, noOpExitCodes: readonly number[], startedAt = Date.now()): BodyResult {
  const { outcome, reason } = classifyExit({ exitCode: null, signal: null, timedOut: false, noOpExitCodes, spawnError });
  const result: BodyResult = {
    outcome,
    exitCode: null,
    signal: null,
    startedAt,
    endedAt: Date.now(),
    durationMs: 0,
    outputTail: '',
    outputBytes: 0,
  };
  if (reason !== undefined) result.reason = reason;
  return result;
}

export function runBody(opts: RunBodyOptions): RunningBody {
  const shell = opts.shell ?? '/bin/sh';
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const tail = new OutputTail(opts.tailBytes ?? DEFAULT_TAIL_BYTES);

  // A stale file from a crashed earlier run must not speak for this one; if
  // it cannot be removed, this run's status file cannot be trusted either.
  let staleStatus: string | undefined;
  // Run files are named after the run: no earlier run can have left one.
  if (!opts.runFiles) {
    try {
      unlinkSync(opts.statusFile);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT') staleStatus = `status file ignored: stale file could not be removed (${code ?? String(err)})`;
    }
  }

  const startedAt = Date.now();
  const t0 = performance.now();
  const files = opts.runFiles;
  const lock = opts.lock;
  const inheritFds = lock ? [...(opts.extraFds ?? []), lock.fd] : (opts.extraFds ?? []);
  const state: SuperviseState = { graceMs, tail, startedAt, t0, staleStatus };
  const keep = supervised(opts);
  const { noOpExitCodes, cwd } = opts;
  /** Before the body is handed to a spawner: the lock is still ours to let go. */
  const failed = (reason: string): RunningBody => {
    if (lock) closeQuiet(lock.fd);
    return { started: Promise.resolve(undefined), done: Promise.resolve(notStarted(reason, noOpExitCodes, startedAt)) };
  };
  const native = files && opts.spawner !== 'node' ? nativeSpawner() : null;
  if (files && native) {
    let spawned: ReturnType<typeof native.spawn>;
    try {
      spawned = native.spawn({ ...wrappedCommand(opts, files), cwd, output: files.output, inheritFds, timeoutMs: opts.timeoutMs }, lock);
    } catch (err) {
      return failed(outputProblem(files.output) ?? describeSpawnError(err, shell, cwd));
    }
    const { started, exited, overdue } = spawned;
    return {
      started: started.then(
        (pid) => pid,
        () => undefined,
      ),
      // The child holds nothing of `opts` while it waits for a spawning thread: the environment can be large.
      done: started.then(
        (pid) => supervise({ exited, streams: [], closed: exited.then(() => undefined), overdue }, pid, keep, state),
        (err: unknown) => notStarted(outputProblem(files.output) ?? describeSpawnError(err, shell, cwd), noOpExitCodes, startedAt),
      ),
    };
  }
  // The native spawner's own error names a bad cwd (see describeSpawnError); Node's may blame the shell.
  const badCwd = cwdProblem(cwd);
  if (badCwd !== undefined) return failed(badCwd);
  let child: ChildProcess;
  let outputFd: number | undefined;
  try {
    if (files) outputFd = openSync(files.output, 'w', 0o600);
    child = spawn(shell, ['-c', files ? exitWrapper(opts.command) : opts.command], {
      cwd,
      env: wholeEnv(opts, files ? wrapperEnv(opts, files) : opts.env),
      // Own process group (setsid): the timeout signals -pid and reaches every descendant that stayed.
      detached: true,
      stdio: ['ignore', outputFd ?? 'pipe', outputFd ?? 'pipe', ...inheritFds],
    });
  } catch (err) {
    if (outputFd !== undefined) closeSync(outputFd);
    // Synchronous failures: ENOTDIR, EBADF (a bad extraFd), NUL bytes in the command.
    return failed(describeSpawnError(err, shell, cwd));
  }
  // The child has its own copy; ours would only keep the file open.
  if (outputFd !== undefined) closeSync(outputFd);
  const pid = child.pid;
  if (lock) {
    if (pid !== undefined) {
      try {
        writeSync(lock.fd, lockRecord({ fireId: lock.fireId, pgid: pid, timeoutAt: Date.now() + lock.timeoutMs }), 0);
      } catch {
        // A full disk must not fail the run: an adopter just cannot time this body out.
      }
    }
    closeQuiet(lock.fd);
  }
  if (pid === undefined) {
    // ENOENT / EACCES arrive as an 'error' event on the next tick.
    const done = new Promise<BodyResult>((resolve) => {
      child.once('error', (err) => resolve(notStarted(describeSpawnError(err, shell, cwd), noOpExitCodes, startedAt)));
    });
    return { started: Promise.resolve(undefined), done };
  }
  return { started: Promise.resolve(pid), done: supervise(fromChildProcess(child), pid, keep, state) };
}


/** What supervise needs of a started body, whichever spawner started it. */
interface Started {
  exited: Promise<ChildExit>;
  /** Pipes (child_process without run files); none when output goes to a file. */
  streams: Readable[];
  /** Every stream ended (or none). */
  closed: Promise<void>;
  /** Where the native spawner tells of a child past its timeout; absent: a Node timer per body. */
  overdue?: (fn: () => void) => void;
}

function fromChildProcess(child: ChildProcess): Started {
  // After a successful spawn 'error' only reports a failed child.kill(), which we never call; an unheard 'error' would crash the process.
  child.on('error', () => undefined);
  return {
    exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    streams: [child.stdout, child.stderr].filter((x): x is NonNullable<typeof x> => x !== null),
    closed: new Promise<void>((resolve) => child.once('close', () => resolve())),
  };
}

/** The wrapper shell a body with run files runs as, and its whole environment, for a native spawner. */
export function wrappedCommand(opts: Pick<RunBodyOptions, 'command' | 'env' | 'baseEnv' | 'shell'>, files: RunFiles): { program: string; args: string[]; env: string[] } {
  const shell = opts.shell ?? '/bin/sh';
  return { program: shell, args: [shell, '-c', exitWrapper(opts.command)], env: envEntries(opts.baseEnv, wrapperEnv(opts, files)) };
}

/** Why a body with run files did not start, from the errno name a native spawner gave. */
export function nativeStartFailure(code: string, message: string, cwd: string, output: string, shell = '/bin/sh'): string {
  return outputProblem(output) ?? describeSpawnError(Object.assign(new Error(message), { code }), shell, cwd);
}

/** The body's own variables (over its base) plus what the exit wrapper reads. */
function wrapperEnv(opts: Pick<RunBodyOptions, 'command' | 'env'>, files: RunFiles): Record<string, string> {
  // Absolute: a body that changes directory must not move where the trap writes.
  return { ...opts.env, ORDERLY_BODY: opts.command, ORDERLY_EXIT_FILE: resolve(files.exit), ORDERLY_EXIT_TAG: files.tag };
}

function wholeEnv(opts: RunBodyOptions, over: Record<string, string>): Record<string, string> {
  return opts.baseEnv ? opts.baseEnv.merged(over) : over;
}

/** The child opens its output file itself: when that fails, say so rather than blame the shell. */
function outputProblem(output: string): string | undefined {
  try {
    accessSync(dirname(output), fsConstants.W_OK | fsConstants.X_OK);
    return undefined;
  } catch (err) {
    return `cannot create the output file ${output} (${errnoCode(err) ?? String(err)})`;
  }
}

interface SuperviseState {
  graceMs: number;
  tail: OutputTail;
  startedAt: number;
  t0: number;
  staleStatus: string | undefined;
}

/** What supervise keeps of the options while the body runs: not the environment (a controller may run thousands of bodies at once). */
export type Supervised = Pick<RunBodyOptions, 'runFiles' | 'statusFile' | 'timeoutMs' | 'noOpExitCodes' | 'noOpWhenSilent'>;

function supervised(opts: RunBodyOptions): Supervised {
  return { runFiles: opts.runFiles, statusFile: opts.statusFile, timeoutMs: opts.timeoutMs, noOpExitCodes: opts.noOpExitCodes, noOpWhenSilent: opts.noOpWhenSilent };
}

async function supervise(started: Started, pgid: number, opts: Supervised, s: SuperviseState): Promise<BodyResult> {
  const { streams, closed } = started;
  for (const stream of streams) {
    stream.on('data', (chunk: Buffer) => s.tail.push(chunk));
    stream.on('error', () => undefined);
  }
  let exitSeen = false;
  const exited = started.exited.then((exit) => {
    exitSeen = true;
    return exit;
  });

  let timedOut = false;
  let termSentAt: number | undefined;
  let killSent = false;
  let graceTimer: LongTimeout | undefined;
  // A controller that was paused (SIGSTOP, a stalled VM) wakes with the timer and the
  // body's exit both pending, timers first: the exit gets one turn of the loop to land,
  // and a wrapper that already wrote the exit status means the shell ended in time.
  const onTimeout = () =>
    setImmediate(() => {
      if (exitSeen || (opts.runFiles !== undefined && readExitStatus(opts.runFiles) !== undefined)) return;
      timedOut = true;
      termSentAt = performance.now();
      signalGroup(pgid, 'SIGTERM');
      graceTimer = setLongTimeout(() => {
        killSent = true;
        signalGroup(pgid, 'SIGKILL');
      }, s.graceMs);
    });
  let timeoutTimer: LongTimeout | undefined;
  if (started.overdue) started.overdue(onTimeout);
  else if (Number.isFinite(opts.timeoutMs) && opts.timeoutMs > 0) timeoutTimer = setLongTimeout(onTimeout, opts.timeoutMs);

  const { code, signal, groupEmpty } = await exited;
  const endedAt = Date.now();
  const durationMs = Math.round(performance.now() - s.t0);
  timeoutTimer?.clear();
  graceTimer?.clear();
  return afterExit({ code, signal, groupEmpty, endedAt, durationMs }, pgid, opts, s, { timedOut, termSentAt, killSent }, streams, closed);
}

/** How the shell ended, and when. */
export interface ShellExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Nothing of its process group was left once it was reaped (unknown: false). */
  groupEmpty?: boolean;
  /** Epoch ms. */
  endedAt: number;
  durationMs: number;
}

/** What was done about a timeout: SIGTERM sent (at `termSentAt`, performance.now() ms), SIGKILL sent. */
export interface TimeoutSteps {
  timedOut: boolean;
  termSentAt: number | undefined;
  killSent: boolean;
}

/**
 * A body that another thread started, supervised and reaped (the fire
 * lane), finished here as runBody finishes its own: leftovers of its group
 * killed, its output tail and status file read, its outcome classified.
 */
export function finishReaped(exit: ShellExit, pgid: number, opts: Supervised & { graceMs: number; tailBytes?: number; startedAt: number }, steps: TimeoutSteps): Promise<BodyResult> {
  const s: SuperviseState = { graceMs: opts.graceMs, tail: new OutputTail(opts.tailBytes ?? DEFAULT_TAIL_BYTES), startedAt: opts.startedAt, t0: 0, staleStatus: undefined };
  return afterExit(exit, pgid, opts, s, steps, [], Promise.resolve());
}

async function afterExit(exit: ShellExit, pgid: number, opts: Supervised, s: SuperviseState, steps: TimeoutSteps, streams: Readable[], closed: Promise<void>): Promise<BodyResult> {
  const { code, signal, groupEmpty, endedAt, durationMs } = exit;
  const { timedOut } = steps;
  let { termSentAt, killSent } = steps;
  // The shell is gone; whatever it left behind in its group is still this
  // body, holding the run-lock fd and possibly writing what the next run
  // reads. It goes now (SIGTERM, SIGKILL after the grace), so that when
  // `done` resolves the next fire cannot overlap it (G1).
  let leftovers = false;
  if (!killSent && !groupEmpty && (await groupHasLiveMember(pgid))) {
    leftovers = true;
    if (termSentAt === undefined) {
      termSentAt = performance.now();
      signalGroup(pgid, 'SIGTERM');
    }
    const deadline = termSentAt + s.graceMs;
    while (performance.now() < deadline) {
      await delay(Math.min(GROUP_POLL_MS, Math.max(1, deadline - performance.now())));
      if (!(await groupHasLiveMember(pgid))) break;
    }
    if (performance.now() >= deadline && (await groupHasLiveMember(pgid))) {
      killSent = true;
      signalGroup(pgid, 'SIGKILL');
    }
  }

  if (streams.length > 0) {
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (drainTimer = setTimeout(resolve, DRAIN_MS)))]);
    clearTimeout(drainTimer);
    for (const stream of streams) stream.destroy();
  }
  // The run files stay: until the caller has recorded the outcome durably,
  // they are how a restarted controller learns it.
  if (opts.runFiles) readTailFile(opts.runFiles.output, s.tail);

  const statusRead = await takeStatusFile(opts.statusFile, opts.runFiles !== undefined);
  const statusIgnored = s.staleStatus ?? statusRead.ignored;
  const status = s.staleStatus === undefined ? statusRead.status : undefined;

  const classified = classifyExit({
    exitCode: code,
    signal,
    timedOut,
    noOpExitCodes: opts.noOpExitCodes,
    status,
    statusIgnored,
    silent: opts.noOpWhenSilent === true && s.tail.text().trim() === '',
    timeoutMs: opts.timeoutMs,
  });
  const notes: string[] = [];
  if (classified.reason !== undefined) notes.push(classified.reason);
  if (timedOut && killSent) notes.push(`SIGKILL after ${s.graceMs} ms grace`);
  if (!timedOut && leftovers) {
    notes.push(`leftover processes of the body's group were sent SIGTERM${killSent ? ' and SIGKILL' : ''}`);
  }

  const result: BodyResult = {
    outcome: classified.outcome,
    exitCode: code,
    signal,
    startedAt: s.startedAt,
    endedAt,
    durationMs,
    outputTail: s.tail.text(),
    outputBytes: s.tail.totalBytes,
  };
  if (notes.length > 0) result.reason = notes.join('; ');
  if (status !== undefined) result.statusFromFile = status;
  return result;
}

/** Fills `tail` with the end of an output file (at most its limit, so a huge file is not read whole). */
function readTailFile(path: string, tail: OutputTail): void {
  let fd: number | undefined;
  try {
    // A body that printed nothing costs one stat.
    if ((statSync(path, { throwIfNoEntry: false })?.size ?? 0) === 0) return;
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const want = Math.min(size, tail.limit);
    const buf = Buffer.alloc(want);
    readSync(fd, buf, 0, want, size - want);
    tail.pushCounted(buf, size);
  } catch {
    // No output file: nothing was printed, or it could not be created.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The exit status the wrapper wrote for this run, or undefined: none yet,
 * half written, or another run's (a reused file). A bare number without a
 * tag was written by an earlier version, whose run files were never reused.
 */
export function readExitStatus(files: RunFiles): { rc: number; endedAt: number } | undefined {
  let text: string;
  let endedAt: number;
  try {
    text = readFileSync(files.exit, 'utf8').trim();
    endedAt = statSync(files.exit).mtimeMs;
  } catch {
    return undefined;
  }
  const m = /^(\d{1,3})(?: (\S+))?$/.exec(text);
  if (!m || (m[2] !== undefined && m[2] !== files.tag)) return undefined;
  const rc = Number(m[1]);
  return rc <= 255 ? { rc, endedAt } : undefined;
}

/**
 * How an adopted body ended, read from its run files once its run lock is
 * free: undefined when it left no exit status (killed with its wrapper, e.g.
 * by a reboot), which the caller records as interrupted. The files stay
 * until the caller has recorded the outcome.
 */
export async function collectFinished(
  files: RunFiles & { status: string },
  facts: { noOpExitCodes: readonly number[]; startedAt: number; tailBytes?: number; noOpWhenSilent?: boolean },
): Promise<BodyResult | undefined> {
  const exit = readExitStatus(files);
  if (exit === undefined) return undefined;
  const { rc, endedAt } = exit;
  const tail = new OutputTail(facts.tailBytes ?? DEFAULT_TAIL_BYTES);
  readTailFile(files.output, tail);
  const statusRead = await takeStatusFile(files.status, true);
  const signal = rc > 128 && rc < 160 ? (signalName(rc - 128) ?? null) : null;
  const classified = classifyExit({
    exitCode: signal ? null : rc,
    signal,
    timedOut: false,
    noOpExitCodes: facts.noOpExitCodes,
    status: statusRead.status,
    statusIgnored: statusRead.ignored,
    silent: facts.noOpWhenSilent === true && tail.text().trim() === '',
  });
  const result: BodyResult = {
    outcome: classified.outcome,
    exitCode: signal ? null : rc,
    signal,
    startedAt: facts.startedAt,
    endedAt: Math.round(endedAt),
    durationMs: Math.max(0, Math.round(endedAt - facts.startedAt)),
    outputTail: tail.text(),
    outputBytes: tail.totalBytes,
  };
  if (classified.reason !== undefined) result.reason = classified.reason;
  if (statusRead.status !== undefined) result.statusFromFile = statusRead.status;
  return result;
}

