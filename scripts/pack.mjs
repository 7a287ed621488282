// Packs the npm tarballs the way a release publishes them: the platform
// package with the built addon inside, and the root package with that
// platform package wired in as an optional dependency (what `napi prepublish`
// does). The wiring happens here, at pack time, and never in the repo's
// package.json: there, npm install would try to fetch the platform package
// from the registry.
//
//   node scripts/pack.mjs [outDir]   prints the two tarball paths as JSON
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PLATFORMS = [{ key: 'linux-x64-gnu', dir: 'npm/linux-x64-gnu' }];

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));
const writeJson = (path, value) => writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);

function npmPack(cwd, outDir) {
  // --ignore-scripts: staged copies have no devDependencies to run `prepare` with.
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', outDir], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return join(outDir, JSON.parse(out)[0].filename);
}

export function packAll(outDir) {
  mkdirSync(outDir, { recursive: true });
  const rootPkg = readJson(join(root, 'package.json'));
  const stage = mkdtempSync(join(tmpdir(), 'orderly-pack-'));
  try {
    for (const required of ['dist/index.js', 'dist/index.cjs', 'index.cjs']) {
      if (!existsSync(join(root, required))) throw new Error(`${required} is missing: run \`npm run build\` first`);
    }

    const optionalDependencies = {};
    const platforms = [];
    for (const { key, dir } of PLATFORMS) {
      const pkg = readJson(join(root, dir, 'package.json'));
      if (pkg.version !== rootPkg.version) {
        throw new Error(`${dir}/package.json is version ${pkg.version}, the root is ${rootPkg.version}`);
      }
      const binary = `${rootPkg.napi.binaryName}.${key}.node`;
      if (!existsSync(join(root, binary))) throw new Error(`${binary} is missing: run \`npm run build:native\` first`);
      const platformStage = join(stage, key);
      mkdirSync(platformStage);
      copyFileSync(join(root, dir, 'package.json'), join(platformStage, 'package.json'));
      copyFileSync(join(root, dir, 'README.md'), join(platformStage, 'README.md'));
      copyFileSync(join(root, binary), join(platformStage, binary));
      platforms.push(npmPack(platformStage, outDir));
      optionalDependencies[pkg.name] = pkg.version;
    }

    // Pack the repo as it would publish, then rewrite the manifest inside.
    const rootTarball = npmPack(root, stage);
    execFileSync('tar', ['-xzf', rootTarball, '-C', stage]);
    const manifestPath = join(stage, 'package', 'package.json');
    const manifest = readJson(manifestPath);
    manifest.optionalDependencies = { ...manifest.optionalDependencies, ...optionalDependencies };
    // A consumer's install runs only `install` (prebuilt check); the rest need the repo.
    manifest.scripts = { install: manifest.scripts.install };
    delete manifest.devDependencies;
    delete manifest.allowScripts;
    writeJson(manifestPath, manifest);
    return { root: npmPack(join(stage, 'package'), outDir), platforms };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(packAll(resolve(process.argv[2] ?? root)), null, 2));
}
