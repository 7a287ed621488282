import { closeSync, constants as fsConstants, lstatSync, openSync, unlinkSync } from 'node:fs';

/**
 * Names of reusable run files. An exec fire used to create its lock, output
 * and exit files under its fire id and delete them seconds later; on ext4
 * without a journal each create then skipped every recently deleted inode
 * (up to ~0.8 ms of CPU here), and renaming emptied files in and out of a
 * spare directory instead still cost six renames and three truncates per
 * fire. A fire now takes a slot, `s<n>`, whose files stay where they are
 * from run to run: the lease's meta names the slot, the lock file names the
 * fire that holds it, and the exit status carries the fire's id, so nothing
 * an earlier run left in them can speak for a later one.
 *
 * A slot comes back once its run is settled. Its settlement may not be
 * durable yet (a no-op's release is relaxed), but the next fire to take the
 * slot appends its acquire after it and touches the files only once that
 * acquire is durable, when everything before it in the log is too: a crash
 * can never bring back two leases naming one slot, nor a lease whose files
 * a later run overwrote.
 */
export class RunSlots {
  readonly #cap: number;
  readonly #free: string[] = [];
  readonly #isFree = new Set<string>();
  #next = 0;

  constructor(cap = 4096) {
    this.#cap = cap;
  }

  /** Free slots kept for later runs. */
  get size(): number {
    return this.#free.length;
  }

  /** A slot still in use after a restart (an adopted run's): new names start above it. */
  reserve(name: string): void {
    if (isSlotName(name)) this.#next = Math.max(this.#next, Number(name.slice(1)) + 1);
  }

  /** The most recently freed slot (its inodes are warm), or a new one. */
  take(): string {
    const name = this.#free.pop();
    if (name === undefined) return `s${this.#next++}`;
    this.#isFree.delete(name);
    return name;
  }

  /**
   * Frees a slot for a later run. False when enough are kept already: the
   * caller deletes its files. Giving a free slot again changes nothing (two
   * runs must never share one).
   */
  give(name: string): boolean {
    if (this.#isFree.has(name)) return true;
    if (this.#free.length >= this.#cap) return false;
    this.#free.push(name);
    this.#isFree.add(name);
    return true;
  }
}

/** `s<n>`: the only names a lease's meta may give as its run files' base (they become paths). */
export function isSlotName(name: unknown): name is string {
  return typeof name === 'string' && /^s\d{1,9}$/.test(name);
}

/** Removes a run's own file; one already gone (or a runs directory removed under us) is left to the sweeper. */
export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // see above
  }
}

/** A descriptor of a run's own file, read-only and not through a symlink; undefined when it cannot be opened. */
export function openQuiet(path: string): number | undefined {
  try {
    return openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
}

export function closeQuiet(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing of ours is left open.
  }
}

/**
 * Whether something is at `path` (a symlink itself, not its target), in one
 * lstat. False when that cannot be told either (the runs directory replaced
 * by a file): the caller's next step on it would fail the same way.
 */
export function existsNoFollow(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}
