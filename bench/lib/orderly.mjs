// The built package for benchmarks that need the whole library (Controller,
// defineOrder), not just the binding. dist/ is rebuilt with tsup when the
// sources it was built from changed, by the same content hash as
// test/global-setup.ts, so a benchmark never measures yesterday's code.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

function hashSources(hash, dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) hashSources(hash, p);
    else hash.update(path.relative(repoRoot, p)).update('\0').update(readFileSync(p)).update('\0');
  }
}

/** Builds dist/ if it is missing or stale; returns whether it built. */
export function ensureBuilt({ log = (...a) => console.error(...a) } = {}) {
  if (!existsSync(path.join(repoRoot, 'index.cjs'))) {
    throw new Error('the native addon is not built: run `npm run build:native` first');
  }
  const hash = createHash('sha256');
  hashSources(hash, path.join(repoRoot, 'src'));
  for (const file of ['index.d.cts', 'tsup.config.ts', 'package.json']) hash.update(readFileSync(path.join(repoRoot, file)));
  const digest = hash.digest('hex');
  const stamp = path.join(repoRoot, 'dist', '.sources.sha256');
  if (existsSync(path.join(repoRoot, 'dist', 'index.js')) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return false;
  log('dist/ is missing or older than src/: building it (npx tsup)');
  execFileSync('npx', ['tsup', '--silent'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  writeFileSync(stamp, digest);
  return true;
}

/** `import('dist/index.js')` after ensureBuilt(); ORDERLY_ENTRY names another entry module. */
export async function loadOrderlyDist(options) {
  if (process.env.ORDERLY_ENTRY) return import(pathToFileURL(path.resolve(process.env.ORDERLY_ENTRY)).href);
  ensureBuilt(options);
  return import(pathToFileURL(path.join(repoRoot, 'dist', 'index.js')).href);
}
