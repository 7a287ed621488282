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

class Spawner {
  readonly #native: NativeSpawner;
  /**
   * By pid, oldest first: the reaper frees a pid before its exit reaches this
   * thread, so a new child may already carry it when the old one's exit lands.
   */
  readonly #waiting = new Map<number, Array<(exit: ChildExit) => void>>();

  constructor() {
    this.#native = new NativeSpawner((e) => {
      const queue = this.#waiting.get(e.pid);
      const resolve = queue?.shift();
      if (!resolve) return;
      if (queue!.length === 0) this.#waiting.delete(e.pid);
      if (this.#waiting.size === 0) this.#native.unref();
      resolve({ code: e.code ?? null, signal: e.signal == null ? null : (signalName(e.signal) ?? null), groupEmpty: e.groupEmpty });
    });
    this.#native.unref();
  }

  /** Throws an error whose `code` is the errno's name when the child cannot start. */
  spawn(req: SpawnRequest): { pid: number; exited: Promise<ChildExit> } {
    const pid = this.#native.spawn({ program: req.program, args: req.args, env: req.env, cwd: req.cwd, output: req.output, inheritFds: req.inheritFds });
    // The exit is delivered on this thread, never before this synchronous code is done.
    if (this.#waiting.size === 0) this.#native.ref();
    const exited = new Promise<ChildExit>((resolve) => {
      const queue = this.#waiting.get(pid);
      if (queue) queue.push(resolve);
      else this.#waiting.set(pid, [resolve]);
    });
    return { pid, exited };
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
