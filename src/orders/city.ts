import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { OrderFileError } from './errors.js';
import { loadOrderDir } from './load.js';
import type { OrderWarning } from './spec.js';
import type { OrderSpec } from './types.js';

export interface LoadedCity {
  /** What was read: a city, a pack, or a directory of order files. */
  kind: 'city' | 'pack' | 'orders';
  orders: OrderSpec[];
  warnings: OrderWarning[];
  /** Rigs the city declares (city.toml `[city] rigs`). */
  rigs: string[];
  /** Each orders directory read. */
  dirs: string[];
}

/**
 * Loads what `orderly run <path>` points at: a city (a `city.toml` whose
 * `[city] rigs` names the rigs, with packs under `packs/<pack>/orders/`), a
 * single pack (`<pack>/orders/*.toml`), or a directory of order files. Each
 * pack's orders get that pack's PACK_DIR, as in Gas City.
 */
export async function loadCity(path: string): Promise<LoadedCity> {
  const root = resolve(path);
  const cityFile = join(root, 'city.toml');
  if (!existsSync(cityFile)) {
    const loaded = await loadOrderDir(root);
    return { kind: loaded.dir === root ? 'orders' : 'pack', orders: loaded.orders, warnings: loaded.warnings, rigs: [], dirs: [loaded.dir] };
  }
  const rigs = readRigs(cityFile);
  const packsDir = join(root, 'packs');
  const packs = existsSync(packsDir)
    ? readdirSync(packsDir)
        .filter((p) => !p.startsWith('.') && existsSync(join(packsDir, p, 'orders')) && statSync(join(packsDir, p, 'orders')).isDirectory())
        .sort()
    : [];
  const out: LoadedCity = { kind: 'city', orders: [], warnings: [], rigs, dirs: [] };
  for (const pack of packs) {
    const loaded = await loadOrderDir(join(packsDir, pack, 'orders'));
    out.orders.push(...loaded.orders);
    out.warnings.push(...loaded.warnings);
    out.dirs.push(loaded.dir);
  }
  return out;
}

function readRigs(file: string): string[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    const line = err instanceof TomlError ? err.line : undefined;
    throw new OrderFileError({ file, ...(line ? { line } : {}), problem: `invalid TOML: ${(err as Error).message.split('\n')[0]}` });
  }
  const city = doc.city as { rigs?: unknown } | undefined;
  const rigs = city?.rigs ?? [];
  if (!Array.isArray(rigs) || !rigs.every((r) => typeof r === 'string' && r.trim() !== '')) {
    throw new OrderFileError({ file, field: 'city.rigs', problem: 'must be an array of rig names' });
  }
  return rigs as string[];
}
