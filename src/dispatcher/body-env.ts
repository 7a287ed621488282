import { basename, dirname, join } from 'node:path';
import type { CityContext } from '../orders/city.js';
import type { ScopedOrder } from '../orders/types.js';

/** Where a body runs and what it is told: what Gas City gives an order's exec and check commands. */
export interface BodyPlace {
  cwd: string;
  /** Gas City's variables; the caller lays them over the inherited environment, then orderly's own. */
  env: Record<string, string>;
}

/** Store settings Gas City fixes for every order, so a script's `bd` acts on the order's store alone. */
const FIXED_STORE_ENV: Readonly<Record<string, string>> = {
  BEADS_DOLT_AUTO_START: '0',
  BD_EXPORT_AUTO: 'false',
  BD_ROUTING_MODE: 'off',
  BEADS_ROUTING_MODE: 'off',
  BD_DOLT_SYNC_CLI_REMOTES: 'false',
  BEADS_DOLT_SYNC_CLI_REMOTES: 'false',
  BD_BACKUP_ENABLED: 'false',
  BEADS_BACKUP_ENABLED: 'false',
};

/** The controller's Dolt settings, under the names `bd` reads. */
const DOLT_PROJECTION: ReadonlyArray<[string, string]> = [
  ['GC_DOLT_HOST', 'BEADS_DOLT_SERVER_HOST'],
  ['GC_DOLT_PORT', 'BEADS_DOLT_SERVER_PORT'],
  ['GC_DOLT_USER', 'BEADS_DOLT_SERVER_USER'],
  ['GC_DOLT_PASSWORD', 'BEADS_DOLT_PASSWORD'],
];

/**
 * Gas City runs a city order in the city's directory and a rig order in the
 * rig's, with the city, rig, store and pack named in the environment
 * (GC_CITY, GC_RIG_ROOT, BEADS_DIR, PACK_DIR, ...). Outside a city (a pack
 * or a directory of order files) only the pack's variables apply and the
 * body runs in `fallbackCwd`.
 */
export function bodyPlace(o: ScopedOrder, city: CityContext | undefined, inherited: Readonly<Record<string, string>>, fallbackCwd: string): BodyPlace {
  const { spec } = o;
  const env: Record<string, string> = {};
  const packDir = spec.packDir;
  if (spec.file) env.ORDER_DIR = dirname(spec.file);
  if (packDir) {
    env.PACK_DIR = packDir;
    env.GC_PACK_DIR = packDir;
    const name = basename(packDir);
    if (name !== '' && name !== '.' && name !== '/') env.GC_PACK_NAME = name;
  }
  env.BEADS_ACTOR = `order:${spec.name}`;
  if (!city) {
    if (o.rig) env.GC_RIG = o.rig;
    return { cwd: fallbackCwd, env };
  }
  const rig = o.rig !== undefined ? city.rigs[o.rig] : undefined;
  const scopeRoot = o.rig !== undefined ? (rig?.path ?? city.dir) : city.dir;
  // A runtime dir the controller was given for this very city wins, as in Gas City.
  const ownCity = [inherited.GC_CITY_PATH, inherited.GC_CITY, inherited.GC_CITY_ROOT].includes(city.dir);
  const runtimeDir = ownCity && inherited.GC_CITY_RUNTIME_DIR ? inherited.GC_CITY_RUNTIME_DIR : city.runtimeDir;
  Object.assign(env, FIXED_STORE_ENV, {
    GC_CITY: city.dir,
    GC_CITY_PATH: city.dir,
    GC_CITY_RUNTIME_DIR: runtimeDir,
    GC_RIG: o.rig ?? '',
    GC_RIG_ROOT: o.rig !== undefined ? (rig?.path ?? '') : '',
    GC_STORE_ROOT: scopeRoot,
    GC_STORE_SCOPE: o.rig !== undefined ? 'rig' : 'city',
    BEADS_DIR: join(scopeRoot, '.beads'),
  });
  const prefix = o.rig !== undefined ? rig?.prefix : city.prefix;
  if (prefix) env.GC_BEADS_PREFIX = prefix;
  if (env.GC_PACK_NAME) env.GC_PACK_STATE_DIR = join(runtimeDir, 'packs', env.GC_PACK_NAME);
  for (const [from, to] of DOLT_PROJECTION) if (inherited[from] !== undefined) env[to] = inherited[from];
  return { cwd: scopeRoot, env };
}
