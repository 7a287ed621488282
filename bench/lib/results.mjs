// Result files under bench/results/: written whole or not at all (tmp + rename),
// so an interrupted run never leaves a half-written baseline behind.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));

// Everything a benchmark prints on stdout goes into its result file too, so
// the README's tables (bench/readme.mjs) are the printed ones, never retyped.
const printed = [];
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => {
  printed.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
  return write(chunk, ...rest);
};

/** Writes `data` as pretty JSON to bench/results/<name>.json; returns the path. */
export function writeResults(name, data) {
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${name}.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  const withReport = { ...data, report: printed.join('') };
  writeFileSync(tmp, `${JSON.stringify(withReport, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
  renameSync(tmp, file);
  return file;
}
