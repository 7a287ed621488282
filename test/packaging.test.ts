import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ESM script, shared with releases.
import { packAll } from '../scripts/pack.mjs';
import { repoRoot, tempDir } from './helpers.js';

const isExecutable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/** PATH without any directory that provides cargo or rustc; node and sh stay. */
function pathWithoutRust(): string {
  const dirs = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir && !['cargo', 'rustc', 'rustup'].some((tool) => isExecutable(join(dir, tool))));
  const nodeDir = dirname(process.execPath);
  if (!dirs.includes(nodeDir)) dirs.unshift(nodeDir);
  return dirs.join(delimiter);
}

/** The environment of a machine without Rust, outside any npm run. */
function envWithoutRust(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: pathWithoutRust() };
  for (const key of Object.keys(env)) {
    if (/^(CARGO|RUSTUP|RUSTC)/.test(key) || key.startsWith('npm_')) delete env[key];
  }
  return env;
}

describe('install script without a binary for this platform', () => {
  const work = tempDir('install-script');
  afterAll(() => work.remove());

  function layout(name: string, checkout: boolean): string {
    const root = join(work.path, name);
    mkdirSync(join(root, 'scripts'), { recursive: true });
    copyFileSync(join(repoRoot, 'scripts', 'install.mjs'), join(root, 'scripts', 'install.mjs'));
    writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'orderly-dispatch', version: '0.0.0', type: 'module' }));
    if (checkout) {
      mkdirSync(join(root, 'crates', 'node'), { recursive: true });
      writeFileSync(join(root, 'crates', 'node', 'Cargo.toml'), '');
    }
    return root;
  }

  it('fails clearly in a source checkout when cargo is missing', () => {
    const root = layout('checkout', true);
    const run = spawnSync(process.execPath, [join(root, 'scripts', 'install.mjs')], { env: envWithoutRust(), encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/cargo was not found on PATH/);
  });

  it('fails clearly in an installed package without the platform package', () => {
    const root = layout('installed', false);
    const run = spawnSync(process.execPath, [join(root, 'scripts', 'install.mjs')], { env: envWithoutRust(), encoding: 'utf8' });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/no prebuilt native addon for linux-x64-gnu/);
  });
});

/** The commands between the README's cli-examples markers, in order: the test runs them as written. */
function readmeExamples(): string[] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const block = /<!-- cli-examples:start -->\s*```sh\n([\s\S]*?)```\s*<!-- cli-examples:end -->/.exec(readme);
  if (!block) throw new Error('README.md has no cli-examples block');
  return block[1]!
    .split('\n')
    .map((line) => line.replace(/\s+#(?=[^'"]*$).*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe('npm packaging', () => {
  const work = tempDir('packaging');
  const consumer = join(work.path, 'consumer');
  const env = envWithoutRust();
  let installOutput = '';

  beforeAll(() => {
    const { root, platforms } = packAll(join(work.path, 'tarballs')) as { root: string; platforms: string[] };
    execFileSync('mkdir', ['-p', consumer]);
    // The consumer approves the install scripts it relies on (npm 11 keys file
    // dependencies by their spec): orderly-dispatch's, which must pass without
    // cargo, and better-sqlite3's, the default audit sink's driver.
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, allowScripts: { [`file:${root}`]: true, 'better-sqlite3': true } }),
    );
    // The dependencies come from the registry (or npm's cache) as for any
    // user; better-sqlite3 builds from source where no prebuilt binary downloads.
    const install = spawnSync(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', root, ...platforms],
      { cwd: consumer, env, encoding: 'utf8' },
    );
    installOutput = `${install.stdout}\n${install.stderr}`;
    expect(install.status, installOutput).toBe(0);
  }, 600_000);

  afterAll(() => work.remove());

  it('installs where cargo is not on PATH, without devDependencies, using the prebuilt addon', () => {
    expect(spawnSync('sh', ['-c', 'command -v cargo || command -v rustc'], { env }).status).not.toBe(0);
    expect(installOutput).toContain('orderly-dispatch: native addon: orderly-dispatch-linux-x64-gnu');
    expect(existsSync(join(consumer, 'node_modules', 'orderly-dispatch-linux-x64-gnu', 'orderly.linux-x64-gnu.node'))).toBe(true);
    expect(existsSync(join(consumer, 'node_modules', 'orderly-dispatch', 'dist', 'index.js'))).toBe(true);
    expect(existsSync(join(consumer, 'node_modules', 'vitest'))).toBe(false);
    expect(existsSync(join(consumer, 'node_modules', 'orderly-dispatch', 'orderly.linux-x64-gnu.node'))).toBe(false);
    // The example city ships, without a developer's machine-local .gc/ files.
    expect(existsSync(join(consumer, 'node_modules', 'orderly-dispatch', 'examples', 'city', 'city.toml'))).toBe(true);
    expect(readdirSync(join(consumer, 'node_modules', 'orderly-dispatch', 'examples', 'city', '.gc'))).toEqual(['site.toml']);
  });

  const npx = (args: string[]) => spawnSync('npx', ['--no-install', 'orderly-dispatch', ...args], { cwd: consumer, env, encoding: 'utf8', timeout: 120_000 });

  it('runs the example city on the default sink with npx, then the README\'s CLI examples in order', () => {
    const run = npx(['run', 'node_modules/orderly-dispatch/examples/city', '--for', '5s', '--json']);
    expect(run.status, run.stderr).toBe(0);
    const events = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const started = events.find((e) => e.type === 'started')!;
    const summary = events.at(-1)!;
    expect(started.audit).toBe(`sqlite:${join(consumer, '.orderly', 'audit.db')}`);
    expect(summary).toMatchObject({ type: 'summary', fires: 21, failed: 0, auditBacklog: 0 });
    // Every did-work run is a row in the default SQLite database, found by a later command.
    const history = npx(['history', '--limit', '100', '--json']);
    expect(history.status, history.stderr).toBe(0);
    const entries = (JSON.parse(history.stdout) as { entries: Array<{ status: string }> }).entries;
    expect(entries.filter((e) => e.status === 'did-work')).toHaveLength(summary.didWork as number);

    const examples = readmeExamples();
    expect(examples.length).toBeGreaterThanOrEqual(5);
    for (const line of examples) {
      expect(line).toMatch(/^npx orderly-dispatch /);
      const r = spawnSync('sh', ['-c', line.replace(/^npx /, 'npx --no-install ')], { cwd: consumer, env, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, `${line}\n${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stderr, line).not.toMatch(/error|warning/i);
    }
  }, 300_000);

  const roundTrip = (load: string, label: string) => `
    ${load}
    const fs = require('node:fs');
    const dir = fs.mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'orderly-consumer-'));
    const first = await Wal.open(dir);
    const lsn = await first.append('hello from ${label}');
    await first.close();
    const second = await Wal.open(dir);
    const records = [...second.records()];
    await second.close();
    fs.rmSync(dir, { recursive: true });
    console.log(JSON.stringify({ lsn: String(lsn), records: records.map((r) => [String(r.lsn), r.payload.toString()]), error: typeof OrderlyError }));
  `;

  const expectRoundTrip = (file: string, label: string) => {
    const run = spawnSync(process.execPath, [file], { cwd: consumer, env, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.records).toEqual([[out.lsn, `hello from ${label}`]]);
    expect(out.error).toBe('function');
  };

  it('works through require() (CommonJS)', () => {
    const file = join(consumer, 'cjs.cjs');
    writeFileSync(file, `(async () => {${roundTrip("const { Wal, OrderlyError } = require('orderly-dispatch');", 'cjs')}})().catch((e) => { console.error(e); process.exit(1); });`);
    expectRoundTrip(file, 'cjs');
  });

  it('works through import() (ES modules)', () => {
    const file = join(consumer, 'esm.mjs');
    writeFileSync(
      file,
      `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\n${roundTrip("const { Wal, OrderlyError } = await import('orderly-dispatch');", 'esm')}`,
    );
    expectRoundTrip(file, 'esm');
  });
});
