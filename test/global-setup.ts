import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from './helpers.js';

function hashSources(hash: ReturnType<typeof createHash>, dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) hashSources(hash, path);
    else hash.update(relative(repoRoot, path)).update('\0').update(readFileSync(path)).update('\0');
  }
}

/**
 * Child processes and the packaging test run the built package (dist/), not
 * the sources vitest transpiles, so dist/ is rebuilt whenever the sources it
 * was built from differ (by content: mtimes lie within a second). The native
 * addon is not rebuilt here (cargo is slow): `npm test` builds it first.
 */
export default function setup(): void {
  if (!existsSync(join(repoRoot, 'index.cjs'))) {
    throw new Error('the native addon is not built: run `npm run build:native` (or `npm test`, which builds it)');
  }
  const hash = createHash('sha256');
  hashSources(hash, join(repoRoot, 'src'));
  for (const file of ['index.d.cts', 'tsup.config.ts', 'package.json']) hash.update(readFileSync(join(repoRoot, file)));
  const digest = hash.digest('hex');
  const stamp = join(repoRoot, 'dist', '.sources.sha256');
  if (existsSync(join(repoRoot, 'dist', 'index.js')) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return;
  execFileSync('npx', ['tsup', '--silent'], { cwd: repoRoot, stdio: 'inherit' });
  writeFileSync(stamp, digest);
}
