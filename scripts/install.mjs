// `npm install` hook. An installed package must work with its prebuilt
// platform package alone (no cargo, no devDependencies); a source checkout has
// no prebuilt binary, so it builds the addon from crates/node with cargo.
// Only node built-ins here: this runs before anything else is guaranteed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const requireHere = createRequire(join(root, 'package.json'));
const log = (message) => console.error(`orderly-dispatch: ${message}`);

function platformKey() {
  const { platform, arch } = process;
  if (platform !== 'linux') return `${platform}-${arch}`;
  const glibc = process.report?.getReport().header.glibcVersionRuntime;
  return `${platform}-${arch}-${glibc ? 'gnu' : 'musl'}`;
}

/** Loads the binary for real: a file that exists but does not dlopen is no binary. */
function loads(specifier) {
  try {
    requireHere(specifier);
    return true;
  } catch (err) {
    if (err?.code !== 'MODULE_NOT_FOUND') log(`${specifier} is present but failed to load: ${err?.message ?? err}`);
    return false;
  }
}

const key = platformKey();
const candidates = [`orderly-dispatch-${key}`, `./orderly.${key}.node`];
const found = candidates.find(loads);
if (found) {
  log(`native addon: ${found}`);
  process.exit(0);
}

const checkout = existsSync(join(root, 'crates', 'node', 'Cargo.toml'));
if (!checkout) {
  log(
    `no prebuilt native addon for ${key}. Prebuilt: linux-x64-gnu (package orderly-dispatch-linux-x64-gnu, ` +
      'installed as an optional dependency: check that optional dependencies were not omitted). ' +
      'Other platforms: build from a source checkout with cargo.',
  );
  process.exit(1);
}

const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
if (cargo.error || cargo.status !== 0) {
  log(
    'this source checkout has no native addon for ' +
      `${key} and cargo was not found on PATH, so it cannot be built. ` +
      'Install Rust (https://rustup.rs, edition 2021, rust >= 1.85) and run `npm install` again.',
  );
  process.exit(1);
}

log(`building the native addon from source with ${cargo.stdout.trim()}`);
const npm = process.env.npm_execpath;
const build = npm
  ? spawnSync(process.execPath, [npm, 'run', 'build:native'], { cwd: root, stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build:native'], { cwd: root, stdio: 'inherit' });
if (build.error || build.status !== 0) {
  log('building the native addon failed (see the cargo output above)');
  process.exit(1);
}
if (!loads(`./orderly.${key}.node`)) {
  log(`the build finished but orderly.${key}.node does not load`);
  process.exit(1);
}
