import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { deprecationOf, discoverOrderFiles, orderRoot, packDirOf } from './discover.js';
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
  /** The order's name, when the file's name does not give it (`orders/<name>/order.toml`). */
  name?: string;
}

export interface LoadOrderDirOptions {
  /** Also called for each warning as it is found (they are returned either way). */
  warn?: WarnFn;
}

export interface LoadedOrders {
  /** The directory the order files were read from (absolute): `dir`, or `dir/orders`. */
  dir: string;
  /** One per order file, sorted by name within each layout. */
  orders: OrderSpec[];
  warnings: OrderWarning[];
}

const KNOWN_KEYS: ReadonlySet<string> = new Set(ORDER_FILE_KEYS);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Loads the orders of one directory: a pack root (Gas City's
 * `orders/<name>.toml`, `orders/<name>.order.toml` and the deprecated
 * `orders/<name>/order.toml` and `formulas/orders/<name>/order.toml`, which
 * warn), or a directory of order files, which is its own pack. A directory
 * without order files yields no orders here; `loadCity` refuses that.
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
  const root = resolve(dir);
  await assertDirectory(root);
  // A pack root; its orders/ directory (PACK_DIR is still the pack); or a plain directory of order files, its own pack.
  const where = isPackRoot(root)
    ? orderRoot(root)
    : basename(root) === 'orders'
      ? orderRoot(dirname(root))
      : { packDir: root, dir: root, formulaLayer: join(root, 'formulas') };
  const orders: OrderSpec[] = [];
  for (const f of discoverOrderFiles(where)) {
    const deprecated = deprecationOf(f);
    if (deprecated) warn({ kind: 'deprecated-path', order: f.name, file: f.file, key: '', message: `${f.file}: ${deprecated}` });
    orders.push(buildOrderFromTable(readOrderTable(readOrderText(f.file), f.file, { warn, name: f.name }), where.packDir, warn));
  }
  return { dir: where.dir, orders, warnings };
}

/** A pack root: it has a pack.toml, or keeps order files where a pack does. */
export function isPackRoot(dir: string): boolean {
  return existsSync(join(dir, 'pack.toml')) || isDirSync(join(dir, 'orders')) || isDirSync(join(dir, 'formulas', 'orders'));
}

function isDirSync(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
}

/** An order file's text: UTF-8, or an OrderFileError naming the file (never read with replacement characters). */
export function readOrderText(file: string): string {
  try {
    return utf8.decode(readFileSync(file));
  } catch (err) {
    const problem = err instanceof TypeError ? 'not valid UTF-8 (TOML files must be UTF-8)' : `cannot read: ${(err as Error).message}`;
    throw new OrderFileError({ file, problem, cause: err });
  }
}

/** `x` for `x.toml` and `x.order.toml`. */
export function orderNameOf(file: string): string {
  return basename(file).replace(/(\.order)?\.toml$/, '');
}

/** One order file's `[order]` table, parsed but not yet validated. */
export interface OrderTable {
  name: string;
  file: string;
  table: Record<string, unknown>;
  lines: KeyLines;
}

/**
 * Parses one order file's TOML and finds its `[order]` table; unknown keys
 * warn. Throws only OrderFileError, whatever the text.
 */
export function readOrderTable(text: string, file: string, options: ParseOrderOptions = {}): OrderTable {
  const path = resolve(file);
  const warn = options.warn ?? emitOrderWarning;
  const name = options.name ?? orderNameOf(path);
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
  return { name, file: path, table, lines };
}

/** Validates an order table into an OrderSpec (see buildOrderSpec). */
export function buildOrderFromTable(t: OrderTable, packDir: string, warn: WarnFn = emitOrderWarning): OrderSpec {
  const { table, lines } = t;
  const src: FieldSource = {
    kind: 'file',
    has: (key: OrderKey) => key !== 'run' && Object.hasOwn(table, key),
    get: (key: OrderKey) => (key === 'run' ? undefined : table[key]),
    label: (key: OrderKey) => key,
    line: (keyPath) => lines.lineOf(['order', ...keyPath]),
  };
  return buildOrderSpec(src, { name: t.name, file: t.file, packDir }, warn);
}

/**
 * Parses one order file's text. Pure but for `warn`: `file` names the order
 * (file name without `.toml` or `.order.toml`, unless `options.name`),
 * places messages and sets `packDir` (the pack root above `orders/` or
 * `formulas/orders/<name>/`, else the file's directory). Throws only
 * OrderFileError, whatever the text.
 */
export function parseOrderFile(text: string, file: string, options: ParseOrderOptions = {}): OrderSpec {
  const t = readOrderTable(text, file, options);
  return buildOrderFromTable(t, packDirOf(t.file), options.warn ?? emitOrderWarning);
}

async function assertDirectory(dir: string): Promise<void> {
  try {
    await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const problem = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : `cannot read directory: ${(err as Error).message}`;
    throw new OrderFileError({ file: dir, problem, cause: err });
  }
}
