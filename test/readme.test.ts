// The README is the user's contract: it must name every error and warning
// code the package can throw or emit, and its Quick start must leave a
// checkout as it found it.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

/** Node's own codes, which the source only compares against. */
const NOT_OURS = new Set(['ERR_MODULE_NOT_FOUND']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|rs)$/.test(name) ? [path] : [];
  });
}

describe('README', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');

  it('lists every ERR_ and WARN_ code the source uses', () => {
    const dirs = [join(repoRoot, 'src'), ...readdirSync(join(repoRoot, 'crates')).map((c) => join(repoRoot, 'crates', c, 'src'))];
    const codes = new Set<string>();
    for (const file of dirs.flatMap(sources)) {
      for (const m of readFileSync(file, 'utf8').matchAll(/["'`]((?:ERR|WARN)_[A-Z_]*[A-Z])["'`]/g)) codes.add(m[1]!);
    }
    for (const c of NOT_OURS) codes.delete(c);
    expect(codes.size).toBeGreaterThan(20);
    expect([...codes].filter((c) => !readme.includes(c)).sort()).toEqual([]);
  });

  it('uses the published command name, never a bare `orderly` command', () => {
    expect(readme).not.toMatch(/(^|[\s`(])orderly (run|fire|list|show|check|history|publish|feed|doctor|repair)\b/m);
    expect(readme).toContain('npm install orderly-dispatch');
  });
});
