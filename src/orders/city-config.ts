import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { parseDuration } from './duration.js';
import { OrderFileError, quote } from './errors.js';
import { describe, isTable } from './spec.js';
import { RIG_NAME } from './scope.js';
import { KeyLines } from './toml-lines.js';

/** One `[imports.<binding>]` (or a V1 `includes` entry), where it was declared. */
export interface ImportRef {
  binding: string;
  source: string;
  /** false: only the pack itself, not what it imports (Gas City's `transitive = false`). */
  transitive: boolean;
  /** The file that declared it: local sources are relative to its directory. */
  declaredIn: string;
  line?: number;
}

export interface RigConfig {
  name: string;
  /** Absolute; from `.gc/site.toml`, else city.toml's deprecated `path`. */
  path?: string;
  prefix?: string;
  /** A rig-local formula layer; its sibling `orders/` is a rig order root. */
  formulasDir?: string;
  imports: ImportRef[];
}

/** A `[[orders.overrides]]` entry: only the fields set are applied. */
export interface OrderOverride {
  index: number;
  /** city.toml, or the fragment (`include`) that holds the `[orders]` table. */
  file: string;
  line?: number;
  name: string;
  /** Undefined or "": city instances only; "*": every instance; else that rig. */
  rig?: string;
  fields: Record<string, unknown>;
}

/** What a Gas City city's configuration says about its orders. */
export interface CityConfig {
  dir: string;
  /** city.toml (absent for a legacy city known only by its `.gc/` directory). */
  file?: string;
  name: string;
  prefix?: string;
  timezone?: string;
  imports: ImportRef[];
  /** Seeds the imports of rigs that `gc rig add` creates; not applied to existing rigs (as in Gas City). */
  defaultRigImports: ImportRef[];
  rigs: RigConfig[];
  skip: string[];
  maxTimeoutMs?: number;
  overrides: OrderOverride[];
  /** Things worth telling that do not stop a load. */
  notes: Array<{ file: string; line?: number; message: string }>;
}

/** `[orders.overrides]` fields Gas City applies; the rest of an order (exec, formula, scope, tz, params) is not overridable. */
export const OVERRIDE_FIELDS = ['enabled', 'trigger', 'gate', 'interval', 'schedule', 'check', 'on', 'pool', 'timeout', 'check_timeout', 'idempotent', 'env'] as const;

interface Doc {
  file: string;
  doc: Record<string, unknown>;
  lines: KeyLines;
}

function readToml(file: string): Doc {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new OrderFileError({ file, problem: `cannot read: ${(err as Error).message}`, cause: err });
  }
  try {
    return { file, doc: parseToml(text) as Record<string, unknown>, lines: new KeyLines(text) };
  } catch (err) {
    const line = err instanceof TomlError ? err.line : undefined;
    const detail = (err as Error).message.replace(/^Invalid TOML document:\s*/, '').split('\n')[0];
    throw new OrderFileError({ file, ...(line ? { line } : {}), problem: `invalid TOML: ${detail}`, cause: err });
  }
}

/** A city root: a `city.toml`, or (Gas City's legacy marker) a `.gc/` directory. */
export function isCityRoot(dir: string): boolean {
  return existsSync(join(dir, 'city.toml')) || statSync(join(dir, '.gc'), { throwIfNoEntry: false })?.isDirectory() === true;
}

/**
 * Reads a city's `city.toml`, its root `pack.toml` and `.gc/site.toml`, as
 * Gas City composes them: imports from both files (city.toml wins a
 * binding), rig paths from the site binding (else city.toml's deprecated
 * `path`), relative paths against the city. Type errors name file, line and
 * key; keys that do not concern orders are not checked.
 */
export function readCityConfig(dir: string): CityConfig {
  const cityDir = resolve(dir);
  const cityFile = join(cityDir, 'city.toml');
  const city = existsSync(cityFile) ? readToml(cityFile) : undefined;
  const packFile = join(cityDir, 'pack.toml');
  const pack = existsSync(packFile) ? readToml(packFile) : undefined;
  const siteFile = join(cityDir, '.gc', 'site.toml');
  const site = existsSync(siteFile) ? readToml(siteFile) : undefined;
  const notes: CityConfig['notes'] = [];

  const d = city?.doc ?? {};
  // Fragments (`include = ["rigs.toml"]`), as Gas City composes them: rigs
  // add up, imports merge, a fragment's [orders] replaces the city's.
  const fragments = strings(city, ['include'], d.include).map((f) => {
    const file = resolve(cityDir, f);
    if (!existsSync(file)) throw new OrderFileError({ file: cityFile, line: city?.lines.lineOf(['include']), field: 'include', problem: `fragment ${quote(f)}: no such file ${file}` });
    return readToml(file);
  });
  if (city && d.city !== undefined) {
    throw new OrderFileError({
      file: cityFile,
      line: city.lines.lineOf(['city']),
      field: 'city',
      problem: 'orderly no longer reads its own [city] table: declare rigs as Gas City does ([[rigs]] name = "...", with [rigs.imports.<pack>] source = "packs/<pack>")',
    });
  }
  const workspace = table(city, ['workspace']) ?? {};
  const siteDoc = site?.doc ?? {};
  const name = str(site, ['workspace_name'], siteDoc.workspace_name) ?? str(city, ['workspace', 'name'], workspace.name) ?? basename(cityDir);
  const prefix = str(site, ['workspace_prefix'], siteDoc.workspace_prefix) ?? str(city, ['workspace', 'prefix'], workspace.prefix);
  const timezone = str(city, ['workspace', 'timezone'], workspace.timezone);
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      throw new OrderFileError({ file: cityFile, line: city?.lines.lineOf(['workspace', 'timezone']), field: 'workspace.timezone', problem: `unknown time zone ${quote(timezone)} (an IANA name such as "Europe/Berlin")` });
    }
  }

  // Pack imports: the root pack.toml's, then city.toml's, which win a binding; V1 includes first.
  const imports = new Map<string, ImportRef>();
  for (const doc of [pack, city, ...fragments]) for (const ref of importTable(doc, ['imports'])) imports.set(ref.binding, ref);
  const v1 = strings(city, ['workspace', 'includes'], workspace.includes).map((source, i) => ({ binding: source, source, transitive: true, declaredIn: cityFile, line: city?.lines.lineOf(['workspace', 'includes']) ?? i }));
  const cityImports = [...v1, ...[...imports.values()].sort((a, b) => cmp(a.binding, b.binding))];

  const defaults = importTable(city, ['defaults', 'rig', 'imports']);
  const defaultRigImports = defaults.length > 0 ? defaults : importTable(pack, ['defaults', 'rig', 'imports']);

  const sitePaths = new Map<string, string>();
  for (const [i, r] of arrayOfTables(site, ['rig']).entries()) {
    const rn = str(site, ['rig', 'name'], r.name);
    const rp = str(site, ['rig', 'path'], r.path);
    if (rn === undefined || rp === undefined) notes.push({ file: siteFile, message: `[[rig]] entry ${i + 1} needs both name and path; ignored` });
    else sitePaths.set(rn, resolve(cityDir, rp));
  }
  const rigs: RigConfig[] = [];
  const seen = new Set<string>();
  for (const doc of [city, ...fragments]) for (const r of arrayOfTables(doc, ['rigs'])) {
    const file = doc?.file ?? cityFile;
    const rn = str(doc, ['rigs', 'name'], r.name);
    if (rn === undefined || rn.trim() === '') throw new OrderFileError({ file, line: doc?.lines.lineOf(['rigs']), field: 'rigs.name', problem: 'every [[rigs]] entry needs a name' });
    if (!RIG_NAME.test(rn)) {
      throw new OrderFileError({ file, line: doc?.lines.lineOf(['rigs']), field: 'rigs.name', problem: `rig name ${quote(rn)} must start with a letter or digit and hold only letters, digits, ".", "_" and "-"` });
    }
    if (seen.has(rn)) throw new OrderFileError({ file, line: doc?.lines.lineOf(['rigs']), field: 'rigs.name', problem: `rig ${quote(rn)} is declared twice` });
    seen.add(rn);
    const legacyPath = str(doc, ['rigs', 'path'], r.path);
    const path = sitePaths.get(rn) ?? (legacyPath !== undefined ? resolve(cityDir, legacyPath) : undefined);
    const rigImports = [
      ...strings(doc, ['rigs', 'includes'], r.includes).map((source) => ({ binding: source, source, transitive: true, declaredIn: file })),
      ...importTable(doc, ['rigs', 'imports'], r.imports).sort((a, b) => cmp(a.binding, b.binding)),
    ];
    const formulas = str(doc, ['rigs', 'formulas_dir'], r.formulas_dir);
    const rig: RigConfig = { name: rn, imports: rigImports };
    if (path !== undefined) rig.path = path;
    const rp = str(doc, ['rigs', 'prefix'], r.prefix);
    if (rp !== undefined) rig.prefix = rp;
    if (formulas !== undefined) rig.formulasDir = resolve(cityDir, formulas);
    rigs.push(rig);
  }

  const ordersDoc = [city, ...fragments].filter((doc) => doc?.doc.orders !== undefined).at(-1) ?? city;
  const ordersFile = ordersDoc?.file ?? cityFile;
  const orders = table(ordersDoc, ['orders']) ?? {};
  const skip = strings(ordersDoc, ['orders', 'skip'], orders.skip);
  const maxTimeout = str(ordersDoc, ['orders', 'max_timeout'], orders.max_timeout);
  let maxTimeoutMs: number | undefined;
  if (maxTimeout !== undefined && maxTimeout.trim() !== '') {
    try {
      maxTimeoutMs = parseDuration(maxTimeout, 'orders.max_timeout');
    } catch (err) {
      throw (err as OrderFileError).locate({ file: ordersFile, line: ordersDoc?.lines.lineOf(['orders', 'max_timeout']) });
    }
  }
  const overrideLines = headerLines(ordersDoc, 'orders.overrides');
  const overrides: OrderOverride[] = arrayOfTables(ordersDoc, ['orders', 'overrides']).map((o, index) => {
    const line = overrideLines[index];
    const at = (field: string, problem: string): never => {
      throw new OrderFileError({ file: ordersFile, ...(line !== undefined ? { line } : {}), field: `orders.overrides[${index}].${field}`, problem });
    };
    if (typeof o.name !== 'string' || o.name.trim() === '') return at('name', 'name is required');
    if (o.rig !== undefined && typeof o.rig !== 'string') return at('rig', `expected a rig name or "*", got ${describe(o.rig)}`);
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(o)) {
      if (key === 'name' || key === 'rig') continue;
      if (!(OVERRIDE_FIELDS as readonly string[]).includes(key)) return at(key, `cannot be overridden (overridable: ${OVERRIDE_FIELDS.join(', ')})`);
      fields[key] = value;
    }
    return { index, file: ordersFile, ...(line !== undefined ? { line } : {}), name: o.name, ...(typeof o.rig === 'string' ? { rig: o.rig } : {}), fields };
  });

  const config: CityConfig = { dir: cityDir, name, imports: cityImports, defaultRigImports, rigs, skip, overrides, notes };
  if (city) config.file = cityFile;
  if (prefix !== undefined) config.prefix = prefix;
  if (timezone !== undefined) config.timezone = timezone;
  if (maxTimeoutMs !== undefined) config.maxTimeoutMs = maxTimeoutMs;
  return config;
}

/** A source Gas City fetches from a repository rather than reading from disk. */
export function isRemoteSource(source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source) || /^[^/\s]+@[^/\s]+:/.test(source) || /^(github|gitlab)\.com\//.test(source);
}

/** A local import's directory: `//x` is city-relative, a relative path is relative to the declaring file. */
export function localSourceDir(ref: ImportRef, cityDir: string): string {
  if (ref.source.startsWith('//')) return join(cityDir, ref.source.slice(2));
  if (isAbsolute(ref.source)) return ref.source;
  return resolve(dirname(ref.declaredIn), ref.source);
}

/** A pack's own imports (`[pack] includes`, then `[imports.*]` by binding). */
export function packImports(packDir: string): ImportRef[] {
  const file = join(packDir, 'pack.toml');
  if (!existsSync(file)) return [];
  const doc = readToml(file);
  const packTable = table(doc, ['pack']) ?? {};
  const includes = strings(doc, ['pack', 'includes'], packTable.includes).map((source) => ({ binding: source, source, transitive: true, declaredIn: file }));
  return [...includes, ...importTable(doc, ['imports']).sort((a, b) => cmp(a.binding, b.binding))];
}

// ------------------------------------------------------------ typed reads

function at(doc: Doc | undefined, path: string[]): { file?: string; line?: number } {
  return doc ? { file: doc.file, line: doc.lines.lineOf(path) } : {};
}

function table(doc: Doc | undefined, path: string[]): Record<string, unknown> | undefined {
  let v: unknown = doc?.doc;
  for (const k of path) v = isTable(v) ? v[k] : undefined;
  if (v === undefined) return undefined;
  if (!isTable(v)) throw new OrderFileError({ ...at(doc, path), field: path.join('.'), problem: `expected a table, got ${describe(v)}` });
  return v;
}

function str(doc: Doc | undefined, path: string[], value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new OrderFileError({ ...at(doc, path), field: path.join('.'), problem: `expected a string, got ${describe(value)}` });
  return value;
}

function strings(doc: Doc | undefined, path: string[], value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new OrderFileError({ ...at(doc, path), field: path.join('.'), problem: `expected an array of strings, got ${describe(value)}` });
  }
  return value as string[];
}

function arrayOfTables(doc: Doc | undefined, path: string[]): Array<Record<string, unknown>> {
  let v: unknown = doc?.doc;
  for (const k of path) v = isTable(v) ? v[k] : undefined;
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every(isTable)) {
    throw new OrderFileError({ ...at(doc, path), field: path.join('.'), problem: `expected an array of tables ([[${path.join('.')}]]), got ${describe(v)}` });
  }
  return v as Array<Record<string, unknown>>;
}

/** `[imports.<binding>] source = "..."`, in declaration order; `explicit` is the table when the caller has it (rig imports). */
function importTable(doc: Doc | undefined, path: string[], explicit?: unknown): ImportRef[] {
  const t = explicit !== undefined ? explicit : (() => {
    let v: unknown = doc?.doc;
    for (const k of path) v = isTable(v) ? v[k] : undefined;
    return v;
  })();
  if (t === undefined) return [];
  if (!isTable(t)) throw new OrderFileError({ ...at(doc, path), field: path.join('.'), problem: `expected a table of imports, got ${describe(t)}` });
  const out: ImportRef[] = [];
  for (const [binding, spec] of Object.entries(t)) {
    const field = `${path.join('.')}.${binding}`;
    if (!isTable(spec) || typeof spec.source !== 'string' || spec.source.trim() === '') {
      throw new OrderFileError({ ...at(doc, [...path, binding]), field, problem: `needs source = "<path or URL>" (e.g. source = "packs/${binding}")` });
    }
    if (spec.transitive !== undefined && typeof spec.transitive !== 'boolean') {
      throw new OrderFileError({ ...at(doc, [...path, binding]), field: `${field}.transitive`, problem: `expected true or false, got ${describe(spec.transitive)}` });
    }
    const line = doc?.lines.lineOf([...path, binding]);
    out.push({ binding, source: spec.source, transitive: spec.transitive !== false, declaredIn: doc?.file ?? '', ...(line !== undefined ? { line } : {}) });
  }
  return out;
}

/** Lines of each `[[header]]`, in order (KeyLines knows a key's first line, not the Nth array entry's). */
function headerLines(doc: Doc | undefined, header: string): number[] {
  if (!doc) return [];
  const text = readFileSync(doc.file, 'utf8').split(/\r?\n/);
  const re = new RegExp(`^\\s*\\[\\[\\s*${header.replace(/\./g, '\\s*\\.\\s*')}\\s*\\]\\]`);
  const out: number[] = [];
  text.forEach((l, i) => {
    if (re.test(l)) out.push(i + 1);
  });
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
