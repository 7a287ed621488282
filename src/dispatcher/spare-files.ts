import { lstatSync, mkdirSync, readdirSync, renameSync, truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Emptied run files kept for later runs. A fire used to create its run
 * files and delete them seconds later; on ext4 without a journal, creating
 * an inode skips every recently deleted one, so that churn made each create
 * cost up to ~0.8 ms of CPU here, more than starting the body. A file is
 * now renamed out of this directory into place, and renamed back (emptied)
 * when its run is settled: no inode is allocated or freed per fire.
 */
export class SpareFiles {
  readonly #dir: string;
  readonly #cap: number;
  readonly #names: string[] = [];
  #next = 0;

  constructor(dir: string, cap = 4096) {
    this.#dir = dir;
    this.#cap = cap;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(dir)) {
      // Anything else here is not ours to hand out.
      if (/^\d+$/.test(name)) {
        this.#names.push(name);
        this.#next = Math.max(this.#next, Number(name) + 1);
      }
    }
  }

  get size(): number {
    return this.#names.length;
  }

  /** Moves an empty spare file to `path`; false when there is none (the caller creates it). */
  take(path: string): boolean {
    while (this.#names.length > 0) {
      const name = this.#names.pop()!;
      try {
        renameSync(join(this.#dir, name), path);
        return true;
      } catch {
        // Removed under us: try the next one.
      }
    }
    return false;
  }

  /** Empties `path` and keeps it for a later run (removes it when enough are kept). Never throws. */
  give(path: string): void {
    // Code orders' fires have no run files: a stat, not a thrown ENOENT, says so.
    if (lstatSync(path, { throwIfNoEntry: false }) === undefined) return;
    try {
      if (this.#names.length >= this.#cap) {
        unlinkSync(path);
        return;
      }
      truncateSync(path, 0);
      const name = String(this.#next++);
      renameSync(path, join(this.#dir, name));
      this.#names.push(name);
    } catch {
      // Gone already (a cleanup job), or the spare directory went: nothing to keep.
      unlinkQuiet(path);
    }
  }
}

/** Removes a run's own file; one already gone (or a runs directory removed under us) is left to the sweeper. */
export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // see above
  }
}
