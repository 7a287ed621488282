import { constants as osConstants } from 'node:os';
import { NativeSpawner } from '../native.js';

/**
 * The native body spawner (crates/spawn): posix_spawn, so the controller
 * does not fork its whole address space per fire, and one reaping thread
 * for every child. One per process; its callback is only referenced while
 * a child is pending, so an idle controller does not keep Node alive.
 */

export interface SpawnRequest {
  program: string;
  args: string[];
  /** `NAME=value`, the child's whole environment. */
  env: string[];
  cwd: string;
  /** stdout + stderr; created or truncated, 0600. */
  output: string;
  /** Become fd 3, 4, … in the child. */
  inheritFds: number[];
  /** The child is reported overdue (`spawn`'s `overdue`) once it has run this long, counted from its start; absent or not finite: never. */
  timeoutMs?: number;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The child's process group was empty when it was reaped (native spawner only). */
  groupEmpty?: boolean;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>();
// First name wins, as Node names them: 6 is SIGABRT (not its alias SIGIOT), 29 SIGIO (not SIGPOLL).
for (const [name, n] of Object.entries(osConstants.signals)) if (!SIGNAL_NAMES.has(n)) SIGNAL_NAMES.set(n, name as NodeJS.Signals);

/** A signal's name from its number, as Node's child_process reports it. */
export function signalName(n: number): NodeJS.Signals | undefined {
  return SIGNAL_NAMES.get(n);
}

/** The lock a body inherits: its started-body record is written, and this copy closed, once the child exists. */
export interface RunLockHandoff {
  fd: number;
  fireId: string;
  /** Infinity: no deadline. */
  timeoutMs: number;
}

interface Pending {
  /** Absent for a child started on the caller's thread: its pid came back at once. */
  resolveStarted?: (pid: number) => void;
  rejectStarted?: (err: Error) => void;
  resolveExit: (exit: ChildExit) => void;
  onOverdue?: () => void;
  /** Heard before anyone asked (the start and the overdue report can come in one batch). */
  overdueSeen?: boolean;
}

class Spawner {
  readonly #native: NativeSpawner;
  /** By request tag: pids can be reused before an exit reaches this thread, tags cannot. */
  readonly #pending = new Map<number, Pending>();
  #nextTag = 1;

  constructor() {
    this.#native = new NativeSpawner((e) => {
      const p = this.#pending.get(e.tag);
      if (!p) return;
      if (e.started) {
        if (e.pid == null) {
          this.#settle(e.tag);
          p.rejectStarted?.(Object.assign(new Error(e.message ?? 'spawn failed'), { code: e.error ?? 'ERR_SPAWN' }));
          return;
        }
        p.resolveStarted?.(e.pid);
        return;
      }
      if (e.overdue) {
        if (p.onOverdue) p.onOverdue();
        else p.overdueSeen = true;
        return;
      }
      // Always after the start (crates/spawn, Reaper::spawn_then): by then the run lock's
      // descriptor is closed, so a body that ended holds nothing of the controller's.
      this.#settle(e.tag);
      p.resolveExit({ code: e.code ?? null, signal: e.signal == null ? null : (signalName(e.signal) ?? null), groupEmpty: e.groupEmpty });
    });
    this.#native.unref();
  }

  /**
   * Starts the child, on this thread or a spawning thread (see the binding's
   * `start`): `started` gives its pid once it runs, or rejects with an error
   * whose `code` is the errno's name. `lock` is the spawner's once this
   * returns; when it throws (a request that cannot be made), the caller's.
   * `overdue(fn)`: `fn` runs once the child outlives `req.timeoutMs` (at
   * once if that was already heard), told by the reaping thread: one timer
   * for every body, not a Node timer per body.
   */
  spawn(req: SpawnRequest, lock?: RunLockHandoff): { started: Promise<number>; exited: Promise<ChildExit>; overdue: (fn: () => void) => void } {
    const tag = this.#nextTag;
    this.#nextTag = tag >= 0xffff_fffe ? 1 : tag + 1;
    const pid = this.#native.start(
      tag,
      { program: req.program, args: req.args, env: req.env, cwd: req.cwd, output: req.output, inheritFds: req.inheritFds, ...(req.timeoutMs !== undefined ? { timeoutMs: req.timeoutMs } : {}) },
      lock,
    );
    // Events are delivered on this thread, never before this synchronous code is done.
    if (this.#pending.size === 0) this.#native.ref();
    const p = {} as Pending;
    const started =
      pid > 0
        ? Promise.resolve(pid)
        : new Promise<number>((resolve, reject) => {
            p.resolveStarted = resolve;
            p.rejectStarted = reject;
          });
    const exited = new Promise<ChildExit>((resolve) => {
      p.resolveExit = resolve;
    });
    this.#pending.set(tag, p);
    const overdue = (fn: () => void) => {
      if (p.overdueSeen) fn();
      else p.onOverdue = fn;
    };
    return { started, exited, overdue };
  }

  #settle(tag: number): void {
    this.#pending.delete(tag);
    if (this.#pending.size === 0) this.#native.unref();
  }
}

let shared: Spawner | null | undefined;

/** The process's native spawner, or null where it cannot run (no pidfd: Linux before 5.3). */
export function nativeSpawner(): Spawner | null {
  if (shared === undefined) {
    try {
      shared = new Spawner();
    } catch {
      shared = null;
    }
  }
  return shared;
}
