// Scratch directories for data files. They live under bench/.tmp by default,
// i.e. on the same disk as the checkout (fsync cost is a property of the disk,
// so the subjects of one benchmark must share it); BENCH_TMPDIR overrides.
// Everything is removed when the process exits, also on Ctrl-C.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.BENCH_TMPDIR ?? fileURLToPath(new URL('../.tmp/', import.meta.url));
const created = new Set();

function removeAll() {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
  created.clear();
}
process.on('exit', removeAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    removeAll();
    process.kill(process.pid, signal);
  });
}

/** The directory scratch directories are made in. */
export function scratchRoot() {
  mkdirSync(root, { recursive: true });
  return root;
}

/** A fresh empty directory; `remove()` deletes it (it is also deleted at exit). */
export function scratchDir(prefix) {
  const dir = mkdtempSync(path.join(scratchRoot(), `${prefix}-`));
  created.add(dir);
  return {
    path: dir,
    remove() {
      rmSync(dir, { recursive: true, force: true });
      created.delete(dir);
    },
  };
}
