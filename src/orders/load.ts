import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { OrderFileError } from './errors.js';
import {
  buildOrderSpec,
  closestKey,
  describe,
  emitOrderWarning,
  isTable,
  ORDER_FILE_KEYS,
  type FieldSource,
  type OrderKey,
  type OrderWarning,
  type WarnFn,
} from './spec.js';
import { KeyLines } from './toml-lines.js';
import type { OrderSpec } from './types.js';

export interface ParseOrderOptions {
  /** Receives unknown-key and ignored-key warnings; default: `process.emitWarning`. */
  warn?: WarnFn;
}

export interface LoadOrderDirOptions {
  /** Also called for each warning as it is found (they are returned either way). */
  warn?: WarnFn;
}

export interface LoadedOrders {
  /** The directory the order files were read from (absolute): `dir`, or `dir/orders`. */
  dir: string;
  /** One per `*.toml` file, sorted by file name. */
  orders: OrderSpec[];
  warnings: OrderWarning[];
}

const KNOWN_KEYS: ReadonlySet<string> = new Set(ORDER_FILE_KEYS);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Loads every `<name>.toml` in `dir` (sorted by name; other files, and names
 * starting with `.`, are ignored). If `dir` has no order files but has an
 * `orders/` subdirectory, that is loaded instead, so a pack root and its
 * `orders/` directory both work (`orderly run examples/city` and
 * `orderly run examples/city/orders`). A directory without order files
 * yields no orders, not an error.
 *
 * Throws the first OrderFileError (files in name order); warnings never stop
 * a load.
 */
export async function loadOrderDir(dir: string, options: LoadOrderDirOptions = {}): Promise<LoadedOrders> {
  const warnings: OrderWarning[] = [];
  const warn: WarnFn = (w) => {
    warnings.push(w);
    options.warn?.(w);
  };
  let orderDir = resolve(dir);
  let files = await orderFiles(orderDir);
  if (files.length === 0) {
    const sub = join(orderDir, 'orders');
    if (await isDirectory(sub)) {
      orderDir = sub;
      files = await orderFiles(sub);
    }
  }
  const orders: OrderSpec[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = utf8.decode(await readFile(file));
    } catch (err) {
      const problem = err instanceof TypeError ? 'not valid UTF-8 (TOML files must be UTF-8)' : `cannot read: ${(err as Error).message}`;
      throw new OrderFileError({ file, problem, cause: err });
    }
    orders.push(parseOrderFile(text, file, { warn }));
  }
  return { dir: orderDir, orders, warnings };
}

/**
 * Parses one order file's text. Pure but for `warn`: `file` only names the
 * order (file name without `.toml`), places messages and sets `packDir`
 * (the parent of `orders/` in Gas City's `<pack>/orders/<name>.toml`, else
 * the file's directory). Throws only OrderFileError, whatever the text.
 */
export function parseOrderFile(text: string, file: string, options: ParseOrderOptions = {}): OrderSpec {
  const path = resolve(file);
  const warn = options.warn ?? emitOrderWarning;
  const name = basename(path).replace(/\.toml$/, '');
  const fileDir = dirname(path);
  const packDir = basename(fileDir) === 'orders' ? dirname(fileDir) : fileDir;

  let doc: Record<string, unknown>;
  try {
    doc = parse(text, { integersAsBigInt: true });
  } catch (err) {
    if (err instanceof TomlError) {
      const detail = err.message.replace(/^Invalid TOML document:\s*/, '').split('\n')[0] ?? '';
      throw new OrderFileError({ file: path, line: err.line, problem: `invalid TOML: ${detail} (column ${err.column})`, cause: err });
    }
    throw new OrderFileError({ file: path, problem: `invalid TOML: ${err instanceof Error ? err.message : String(err)}`, cause: err });
  }

  const lines = new KeyLines(text);
  const warnAt = (kind: OrderWarning['kind'], keyPath: string[], what: string): void => {
    const line = lines.lineOf(keyPath);
    const key = keyPath.at(-1) ?? '';
    warn({ kind, order: name, file: path, line, key, message: `${line === undefined ? path : `${path}:${line}`}: ${key}: ${what}` });
  };

  const table = doc.order;
  if (table === undefined) {
    const strays = Object.keys(doc).filter((key) => KNOWN_KEYS.has(key));
    const hint = strays.length > 0 ? ` (${strays.join(', ')} ${strays.length === 1 ? 'is' : 'are'} at the top level: move ${strays.length === 1 ? 'it' : 'them'} under [order])` : '';
    throw new OrderFileError({ file: path, problem: `missing [order] table: order files put their fields under [order]${hint}` });
  }
  if (!isTable(table)) {
    const got = Array.isArray(table) ? 'an array of tables ([[order]]); one file holds one order' : describe(table);
    throw new OrderFileError({ file: path, line: lines.lineOf(['order']), field: 'order', problem: `expected one [order] table, got ${got}` });
  }
  for (const key of Object.keys(doc)) {
    if (key !== 'order') warnAt('unknown-key', [key], 'unknown top-level key, ignored (orderly reads only the [order] table)');
  }
  for (const key of Object.keys(table)) {
    if (KNOWN_KEYS.has(key)) continue;
    const near = closestKey(key, ORDER_FILE_KEYS);
    warnAt('unknown-key', ['order', key], `unknown key in [order], ignored${near === undefined ? '' : ` (did you mean ${near}?)`}`);
  }

  const src: FieldSource = {
    kind: 'file',
    has: (key: OrderKey) => key !== 'run' && Object.hasOwn(table, key),
    get: (key: OrderKey) => (key === 'run' ? undefined : table[key]),
    label: (key: OrderKey) => key,
    line: (keyPath) => lines.lineOf(['order', ...keyPath]),
  };
  return buildOrderSpec(src, { name, file: path, packDir }, warn);
}

async function orderFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : `cannot read directory: ${(err as Error).message}`;
    throw new OrderFileError({ file: dir, problem, cause: err });
  }
  const names = entries
    .filter((entry) => entry.name.endsWith('.toml') && !entry.name.startsWith('.') && (entry.isFile() || entry.isSymbolicLink()))
    .map((entry) => entry.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const files: string[] = [];
  for (const name of names) {
    const file = join(dir, name);
    // Only a directory named *.toml is skipped; a dangling symlink is reported when read.
    if ((await isDirectory(file)) !== true) files.push(file);
  }
  return files;
}

async function isDirectory(path: string): Promise<boolean | undefined> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return undefined;
  }
}
