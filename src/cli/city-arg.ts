import { resolve } from 'node:path';
import { isCityRoot } from '../orders/city-config.js';
import { loadCity, type LoadedCity } from '../orders/city.js';
import { isPackRoot } from '../orders/load.js';
import { UsageError } from './args.js';
import { readSavedRun, type SavedRun } from './saved-run.js';

/** The options every command that reads a city's orders takes. */
export const CITY_OPTIONS = { city: { type: 'string' }, state: { type: 'string' } } as const;

export const CITY_HELP = `  --city PATH     the city, pack or orders directory (default: the one the last
                  orderly-dispatch run on --state used, else the current directory)
  --state DIR     state directory (default .orderly)`;

export interface OpenedCity {
  path: string;
  state: string;
  loaded: LoadedCity;
  saved: SavedRun | undefined;
}

export function savedRun(state: string): SavedRun | undefined {
  return readSavedRun(state);
}

/** Finds the orders a command is about: --city, the last run's, or the current directory if it is a city or pack. */
export async function openCity(values: { city?: string | undefined; state?: string | undefined }): Promise<OpenedCity> {
  const state = resolve(values.state ?? '.orderly');
  const saved = savedRun(state);
  const cwd = process.cwd();
  const path = values.city ? resolve(values.city) : (saved?.ordersDir ?? (isCityRoot(cwd) || isPackRoot(cwd) ? cwd : undefined));
  if (path === undefined) {
    throw new UsageError(`no city here: pass --city PATH (a city.toml directory, a pack or an orders directory), or run it once with orderly-dispatch run --state ${state}`);
  }
  return { path, state, loaded: await loadCity(path, saved?.load ?? {}), saved };
}
