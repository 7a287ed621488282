import { lstatSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Where a pack keeps its orders: `<pack>/orders`, and the legacy `<pack>/formulas/orders`. */
export interface OrderRoot {
  /** The pack's root (PACK_DIR): the parent of `orders/`. */
  packDir: string;
  /** `<packDir>/orders`. */
  dir: string;
  /** The legacy layout's parent, `<packDir>/formulas`. */
  formulaLayer: string;
}

/** The ways Gas City has laid out order files, newest first. */
export type OrderLayout = 'flat' | 'infix' | 'subdir' | 'legacy';

export interface FoundOrderFile {
  /** The order's name: from the file name, or the directory name of the subdirectory layouts. */
  name: string;
  file: string;
  layout: OrderLayout;
  root: OrderRoot;
}

export function orderRoot(packDir: string): OrderRoot {
  return { packDir, dir: join(packDir, 'orders'), formulaLayer: join(packDir, 'formulas') };
}

/** What a deprecated layout should become, as Gas City's own warning words it. */
export function deprecationOf(found: FoundOrderFile): string | undefined {
  switch (found.layout) {
    case 'infix':
    case 'flat':
      return undefined;
    case 'subdir':
      return `deprecated order path ${found.file}; rename to orders/${found.name}.toml`;
    case 'legacy':
      return `deprecated order path ${found.file}; move to orders/${found.name}.toml`;
  }
}

/**
 * The order files of one pack, by name, as Gas City discovers them:
 * `orders/<name>.toml`, then `orders/<name>.order.toml` for a name not yet
 * seen (so `x.toml` wins and `x.order.toml` is not even read), then the
 * deprecated `orders/<name>/order.toml` and `formulas/orders/<name>/order.toml`.
 * Names are sorted within each layout; hidden files are ignored. A missing
 * `orders/` is no orders, not an error: a pack may ship only formulas.
 */
export function discoverOrderFiles(root: OrderRoot): FoundOrderFile[] {
  const found = new Map<string, FoundOrderFile>();
  const add = (name: string, file: string, layout: OrderLayout): void => {
    if (name === '' || found.has(name)) return;
    found.set(name, { name, file, layout, root });
  };
  const entries = listDir(root.dir);
  const files = entries.filter((e) => !e.startsWith('.') && isFileLike(join(root.dir, e)));
  for (const f of files) if (f.endsWith('.toml') && !f.endsWith('.order.toml')) add(f.slice(0, -'.toml'.length), join(root.dir, f), 'flat');
  for (const f of files) if (f.endsWith('.order.toml')) add(f.slice(0, -'.order.toml'.length), join(root.dir, f), 'infix');
  for (const [dir, layout] of [
    [root.dir, 'subdir'],
    [join(root.formulaLayer, 'orders'), 'legacy'],
  ] as const) {
    for (const name of listDir(dir)) {
      if (name.startsWith('.')) continue;
      const file = join(dir, name, 'order.toml');
      if (isFileLike(file)) add(name, file, layout);
    }
  }
  return [...found.values()];
}

/** The pack a path under `<pack>/orders/` or `<pack>/formulas/orders/<name>/` belongs to. */
export function packDirOf(file: string): string {
  let dir = dirname(file);
  if (basename(dir) !== 'orders') dir = dirname(dir);
  if (basename(dir) !== 'orders') return dirname(file);
  const parent = dirname(dir);
  return basename(parent) === 'formulas' ? dirname(parent) : parent;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  } catch {
    return [];
  }
}

/** A file, or a symlink to one; a dangling link counts, so reading it reports the problem. */
function isFileLike(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    try {
      return lstatSync(path).isSymbolicLink();
    } catch {
      return false;
    }
  }
}
