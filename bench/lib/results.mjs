// Result files under bench/results/: written whole or not at all (tmp + rename),
// so an interrupted run never leaves a half-written baseline behind.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));

/** Writes `data` as pretty JSON to bench/results/<name>.json; returns the path. */
export function writeResults(name, data) {
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${name}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(data, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
  renameSync(tmp, file);
  return file;
}
