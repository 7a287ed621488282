import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { isCityRoot, isRemoteSource, localSourceDir, packImports, readCityConfig, type CityConfig, type ImportRef, type OrderOverride } from './city-config.js';
import { deprecationOf, discoverOrderFiles, orderRoot, type FoundOrderFile, type OrderRoot } from './discover.js';
import { OrderFileError } from './errors.js';
import { buildOrderFromTable, isPackRoot, readOrderTable, readOrderText, type OrderTable } from './load.js';
import { describe, type OrderWarning, type WarnFn } from './spec.js';
import type { OrderSpec } from './types.js';

/** What bodies of a Gas City city are told about it (GC_CITY, GC_RIG_ROOT, ...), and where its events are. */
export interface CityContext {
  name: string;
  dir: string;
  /** `<city>/.gc/runtime` (GC_CITY_RUNTIME_DIR). */
  runtimeDir: string;
  /** The city's bead prefix (GC_BEADS_PREFIX of city orders), when declared. */
  prefix?: string;
  timezone?: string;
  /** The city's event log, `<city>/.gc/events.jsonl`: event orders follow it. */
  eventLog: string;
  rigs: Record<string, { path?: string; prefix?: string }>;
}

export interface LoadedCity {
  /** What was read: a Gas City city, a pack, or a directory of order files. */
  kind: 'city' | 'pack' | 'orders';
  root: string;
  /** The orders that loaded; each invalid one is in `problems` instead. */
  orders: OrderSpec[];
  /** Invalid orders, unmatched overrides, imports that could not be read: each names its file and line. */
  problems: OrderFileError[];
  warnings: OrderWarning[];
  /** Orders left out by `[orders] skip` (by name or skip alias), by scoped name. */
  skipped: string[];
  /** Rig names (city.toml `[[rigs]]`). */
  rigs: string[];
  /** Every order directory read, in priority order (lowest first). */
  dirs: string[];
  city?: CityContext;
}

export interface LoadCityOptions {
  /** Refuse the whole load on the first problem instead of leaving the bad order out. */
  strict?: boolean;
  /** Also called for each warning as it is found. */
  warn?: WarnFn;
  /** Exit 0 with no output is a no-op for every order that does not say otherwise (`no_op_when_silent`). */
  silentIsNoOp?: boolean;
}

/** One place an order runs: the city, or one rig. */
interface Instance {
  found: FoundOrderFile;
  rig?: string;
  /** A city pack's `scope = "rig"` order, cloned per rig. */
  cloned?: boolean;
}

/**
 * Loads what `orderly-dispatch run <path>` points at, as Gas City would:
 * - a city (`city.toml`, or a legacy `.gc/`): the packs it imports
 *   (`[imports.*]` in city.toml or its root pack.toml), each rig's imports
 *   (`[rigs.imports.*]`: rig orders, `name:rig:<rig>`, unless the order says
 *   `scope = "city"`), and the city's own `orders/` last, which wins a name;
 *   then `[orders]` skip, overrides and max_timeout, and `[workspace]
 *   timezone` for cron orders without `tz`;
 * - a pack (`pack.toml`, or an `orders/` directory), with the packs it imports;
 * - a directory of order files.
 *
 * An invalid order is left out and reported in `problems` (file:line:
 * field: problem), so one bad file does not stop a city; `strict` refuses
 * the load instead. A path that holds no order file at all is an error.
 */
export async function loadCity(path: string, options: LoadCityOptions = {}): Promise<LoadedCity> {
  const root = resolve(path);
  const warnings: OrderWarning[] = [];
  // One file may stand for several instances (one per rig): tell each thing once.
  const told = new Set<string>();
  const warn: WarnFn = (w) => {
    if (told.has(w.message)) return;
    told.add(w.message);
    warnings.push(w);
    (options.warn ?? (() => {}))(w);
  };
  const problems = new Map<string, OrderFileError>();
  const problem = (err: unknown): void => {
    const e = err instanceof OrderFileError ? err : new OrderFileError({ problem: String(err) });
    if (options.strict) throw e;
    if (!problems.has(e.message)) problems.set(e.message, e);
  };

  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
    throw new OrderFileError({ file: root, problem: existsSync(root) ? 'not a directory' : 'no such directory' });
  }
  const loader = new Loader(root, warn, problem, options.silentIsNoOp === true);
  let loaded: Omit<LoadedCity, 'problems' | 'warnings'>;
  if (isCityRoot(root)) loaded = loader.city(readCityConfig(root));
  else if (isPackRoot(root)) loaded = loader.pack();
  else loaded = loader.flat();

  if (loader.filesSeen === 0) {
    throw new OrderFileError({
      file: root,
      problem:
        loaded.kind === 'city'
          ? `no order files in this city (looked in ${loaded.dirs.length} order directories: the city's orders/ and those of the packs it and its rigs import)`
          : 'no order files here: expected a Gas City city (city.toml), a pack (pack.toml with orders/<name>.toml) or a directory of <name>.toml order files',
    });
  }
  return { ...loaded, problems: [...problems.values()], warnings };
}

class Loader {
  filesSeen = 0;
  readonly #tables = new Map<string, OrderTable | null>();
  readonly #silentPacks = new Map<string, boolean | undefined>();

  constructor(
    readonly root: string,
    readonly warn: WarnFn,
    readonly problem: (err: unknown) => void,
    readonly silentIsNoOp: boolean,
  ) {}

  flat(): Omit<LoadedCity, 'problems' | 'warnings'> {
    const where: OrderRoot =
      basename(this.root) === 'orders' ? orderRoot(dirname(this.root)) : { packDir: this.root, dir: this.root, formulaLayer: join(this.root, 'formulas') };
    const orders = this.#build([...this.#scan([where]).values()].map((found) => ({ found })), undefined);
    return { kind: 'orders', root: this.root, orders, skipped: [], rigs: [], dirs: [where.dir] };
  }

  pack(): Omit<LoadedCity, 'problems' | 'warnings'> {
    const dirs = this.#expand(packImports(this.root), this.root);
    dirs.push(this.root);
    const roots = dirs.map(orderRoot);
    const orders = this.#build([...this.#scan(roots).values()].map((found) => ({ found })), undefined);
    return { kind: 'pack', root: this.root, orders, skipped: [], rigs: [], dirs: roots.map((r) => r.dir) };
  }

  city(cfg: CityConfig): Omit<LoadedCity, 'problems' | 'warnings'> {
    for (const n of cfg.notes) this.warn({ kind: 'city', order: '', file: n.file, key: '', message: `${n.file}${n.line ? `:${n.line}` : ''}: ${n.message}` });
    const cityRoots = [...this.#expand(cfg.imports, cfg.dir).map(orderRoot), orderRoot(cfg.dir)];
    const cityOrders = this.#scan(cityRoots);
    const dirs = cityRoots.map((r) => r.dir);
    const instances: Instance[] = [];
    const promoted = new Set<string>();
    const rigOrders = new Map<string, Map<string, FoundOrderFile>>();
    for (const rig of [...cfg.rigs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const roots = this.#expand(rig.imports, cfg.dir).map(orderRoot);
      if (rig.formulasDir !== undefined) roots.push({ packDir: dirname(rig.formulasDir), dir: join(dirname(rig.formulasDir), 'orders'), formulaLayer: rig.formulasDir });
      dirs.push(...roots.map((r) => r.dir));
      rigOrders.set(rig.name, this.#scan(roots));
    }
    for (const found of cityOrders.values()) {
      if (this.#scope(found) !== 'rig') {
        instances.push({ found });
        continue;
      }
      // A city pack's rig order runs on every rig that does not import it itself.
      for (const rig of cfg.rigs) if (!rigOrders.get(rig.name)?.has(found.name)) instances.push({ found, rig: rig.name, cloned: true });
    }
    for (const [rig, found] of rigOrders) {
      for (const f of found.values()) {
        if (this.#scope(f) !== 'city') instances.push({ found: f, rig });
        else if (!cityOrders.has(f.name) && !promoted.has(f.name)) {
          // Promoted once, from the first rig in name order; a city order of that name wins.
          promoted.add(f.name);
          instances.push({ found: f });
        }
      }
    }
    const skipped: string[] = [];
    const orders = this.#build(instances, cfg, skipped);
    const context: CityContext = {
      name: cfg.name,
      dir: cfg.dir,
      runtimeDir: join(cfg.dir, '.gc', 'runtime'),
      eventLog: join(cfg.dir, '.gc', 'events.jsonl'),
      rigs: Object.fromEntries(cfg.rigs.map((r) => [r.name, { ...(r.path ? { path: r.path } : {}), ...(r.prefix ? { prefix: r.prefix } : {}) }])),
    };
    if (cfg.prefix !== undefined) context.prefix = cfg.prefix;
    if (cfg.timezone !== undefined) context.timezone = cfg.timezone;
    // A rig order acts on its rig's directory and store: without one it would act on the city's.
    const unbound = new Set(cfg.rigs.filter((r) => r.path === undefined).map((r) => r.name));
    const bound = orders.filter((o) => !(o.rigs ?? []).some((r) => unbound.has(r)));
    for (const rig of unbound) {
      const left = orders.filter((o) => o.rigs?.includes(rig)).map((o) => o.name);
      if (left.length === 0) continue;
      this.problem(
        new OrderFileError({
          file: cfg.file ?? cfg.dir,
          field: 'rigs',
          problem: `rig ${JSON.stringify(rig)} is declared but has no path binding (.gc/site.toml [[rig]] name/path, as gc rig add writes it): its ${left.length} order(s) are left out (${left.join(', ')})`,
        }),
      );
    }
    orders.splice(0, orders.length, ...bound);
    return { kind: 'city', root: cfg.dir, orders, skipped, rigs: cfg.rigs.map((r) => r.name), dirs, city: context };
  }

  /** Pack directories of `refs`, each after what it imports (Gas City's topological order), without repeats. */
  #expand(refs: ImportRef[], cityDir: string, stack: string[] = [], out: string[] = []): string[] {
    for (const ref of refs) {
      const where = `${ref.declaredIn}${ref.line ? `:${ref.line}` : ''}`;
      if (isRemoteSource(ref.source)) {
        this.problem(
          new OrderFileError({
            file: ref.declaredIn,
            ...(ref.line ? { line: ref.line } : {}),
            field: `imports.${ref.binding}`,
            problem: `remote import ${JSON.stringify(ref.source)} is not fetched: orderly reads packs from disk only, so this pack's orders are not loaded (vendor it into the city, or set source to a local checkout)`,
          }),
        );
        continue;
      }
      const dir = localSourceDir(ref, cityDir);
      if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
        this.problem(new OrderFileError({ file: ref.declaredIn, ...(ref.line ? { line: ref.line } : {}), field: `imports.${ref.binding}`, problem: `source ${JSON.stringify(ref.source)}: no such directory ${dir}` }));
        continue;
      }
      if (stack.includes(dir)) {
        this.problem(new OrderFileError({ file: ref.declaredIn, field: `imports.${ref.binding}`, problem: `import cycle: ${[...stack, dir].join(' -> ')} (at ${where})` }));
        continue;
      }
      if (ref.transitive) {
        try {
          this.#expand(packImports(dir), cityDir, [...stack, dir], out);
        } catch (err) {
          this.problem(err);
        }
      }
      if (!out.includes(dir)) out.push(dir);
    }
    return out;
  }

  /** Order files of `roots` by name: a later root replaces an earlier one's order of the same name, keeping its place. */
  #scan(roots: OrderRoot[]): Map<string, FoundOrderFile> {
    const found = new Map<string, FoundOrderFile>();
    for (const root of roots) {
      for (const f of discoverOrderFiles(root)) {
        this.filesSeen++;
        found.set(f.name, f);
      }
    }
    return found;
  }

  #table(found: FoundOrderFile): OrderTable | null {
    let t = this.#tables.get(found.file);
    if (t !== undefined) return t;
    const deprecated = deprecationOf(found);
    if (deprecated) this.warn({ kind: 'deprecated-path', order: found.name, file: found.file, key: '', message: `${found.file}: ${deprecated}` });
    try {
      t = readOrderTable(readOrderText(found.file), found.file, { warn: this.warn, name: found.name });
      if (t.table.scope !== undefined && t.table.scope !== 'city' && t.table.scope !== 'rig') {
        throw new OrderFileError({ file: found.file, line: t.lines.lineOf(['order', 'scope']), field: 'scope', problem: `unknown scope ${describe(t.table.scope)} (want "city" or "rig")` });
      }
    } catch (err) {
      this.problem(err instanceof OrderFileError ? err : new OrderFileError({ file: found.file, problem: `cannot read: ${(err as Error).message}` }));
      t = null;
    }
    this.#tables.set(found.file, t);
    return t;
  }

  #scope(found: FoundOrderFile): 'city' | 'rig' | undefined {
    const scope = this.#table(found)?.table.scope;
    return scope === 'city' || scope === 'rig' ? scope : undefined;
  }

  /** `no_op_when_silent` from `<pack>/orderly.toml`: a file Gas City does not read, so its packs stay valid there. */
  #packSilent(packDir: string): boolean | undefined {
    if (this.#silentPacks.has(packDir)) return this.#silentPacks.get(packDir);
    let value: boolean | undefined;
    const file = join(packDir, 'orderly.toml');
    if (existsSync(file)) {
      try {
        const doc = parseToml(readFileSync(file, 'utf8')) as Record<string, unknown>;
        const v = doc.no_op_when_silent;
        if (v !== undefined && typeof v !== 'boolean') throw new OrderFileError({ file, field: 'no_op_when_silent', problem: `expected true or false, got ${describe(v)}` });
        value = v as boolean | undefined;
      } catch (err) {
        this.problem(err instanceof OrderFileError ? err : new OrderFileError({ file, problem: `invalid TOML: ${(err as Error).message.split('\n')[0]}` }));
      }
    }
    this.#silentPacks.set(packDir, value);
    return value;
  }

  #build(instances: Instance[], cfg: CityConfig | undefined, skipped: string[] = []): OrderSpec[] {
    const matched = new Set<number>();
    const specs: OrderSpec[] = [];
    for (const inst of instances) {
      const t = this.#table(inst.found);
      if (t === null) continue;
      const applied = cfg ? cfg.overrides.filter((o) => overrideMatches(o, inst)) : [];
      for (const o of applied) matched.add(o.index);
      const table = withOverrides(t.table, applied);
      if (cfg?.timezone !== undefined && table.tz === undefined && (table.trigger ?? table.gate) === 'cron') table.tz = cfg.timezone;
      let spec: OrderSpec;
      try {
        spec = buildOrderFromTable({ ...t, table }, inst.found.root.packDir, this.warn);
      } catch (err) {
        const e = err as OrderFileError;
        this.problem(
          applied.length > 0
            ? new OrderFileError({ file: e.file, line: e.line, field: e.field, problem: `${e.problem} (with [[orders.overrides]] at ${applied.map((o) => `${o.file}:${o.line ?? '?'}`).join(', ')})` })
            : err,
        );
        continue;
      }
      if (inst.rig !== undefined) {
        spec.scope = 'rig';
        spec.rigs = [inst.rig];
      } else if (cfg) {
        spec.scope = 'city';
      }
      if (cfg?.maxTimeoutMs !== undefined && spec.timeoutMs > cfg.maxTimeoutMs) spec.timeoutMs = cfg.maxTimeoutMs;
      if (spec.noOpWhenSilent === undefined) {
        const silent = this.#packSilent(inst.found.root.packDir) ?? (this.silentIsNoOp ? true : undefined);
        if (silent !== undefined) spec.noOpWhenSilent = silent;
      }
      if (cfg && (cfg.skip.includes(spec.name) || (spec.skipAliases ?? []).some((a) => cfg.skip.includes(a)))) {
        skipped.push(inst.rig === undefined ? spec.name : `${spec.name}:rig:${inst.rig}`);
        continue;
      }
      specs.push(spec);
    }
    for (const o of cfg?.overrides ?? []) {
      if (matched.has(o.index)) continue;
      this.problem(new OrderFileError({ file: o.file, ...(o.line !== undefined ? { line: o.line } : {}), field: `orders.overrides[${o.index}]`, problem: unmatched(o, instances) }));
    }
    return specs;
  }
}

function overrideMatches(o: OrderOverride, inst: Instance): boolean {
  if (o.name !== inst.found.name) return false;
  if (o.rig === '*') return true;
  if (o.rig === undefined || o.rig === '') return inst.rig === undefined;
  return o.rig === inst.rig;
}

/** Gas City's words for an override that names nothing. */
function unmatched(o: OrderOverride, instances: Instance[]): string {
  const named = instances.filter((i) => i.found.name === o.name);
  if (named.length === 0) return `order ${JSON.stringify(o.name)} not found`;
  if (o.rig === '*') return `order ${JSON.stringify(o.name)} not found (rig "*" matches no instances)`;
  if (o.rig === undefined || o.rig === '') {
    const rigs = named.map((i) => i.rig).filter((r): r is string => r !== undefined);
    return `order ${JSON.stringify(o.name)} not found at city scope (${rigs.length} instance${rigs.length === 1 ? '' : 's'} rig-scoped); set ${rigs.map((r) => `rig = ${JSON.stringify(r)}`).join(', ')} to target a per-rig instance, or use rig = "*" to target all instances`;
  }
  return `order ${JSON.stringify(o.name)} (rig ${JSON.stringify(o.rig)}) not found`;
}

/** The order's table with each override's fields laid over it; `env` merges key by key, `gate` is `trigger`. */
function withOverrides(table: Record<string, unknown>, overrides: OrderOverride[]): Record<string, unknown> {
  if (overrides.length === 0) return { ...table };
  const out: Record<string, unknown> = { ...table };
  for (const o of overrides) {
    for (const [key, value] of Object.entries(o.fields)) {
      if (key === 'env') {
        out.env = { ...(typeof out.env === 'object' && out.env !== null ? (out.env as Record<string, unknown>) : {}), ...(value as Record<string, unknown>) };
      } else if (key === 'trigger' || (key === 'gate' && o.fields.trigger === undefined)) {
        out.trigger = value;
        delete out.gate;
      } else if (key !== 'gate') {
        out[key] = value;
      }
    }
  }
  return out;
}
