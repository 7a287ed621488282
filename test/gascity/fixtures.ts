import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll } from 'vitest';
import { repoRoot, tempDir } from '../helpers.js';

/** Writes files (path → text) under `root`; a text starting with `#!` is made executable. */
export function writeTree(root: string, files: Record<string, string>): string {
  for (const [path, text] of Object.entries(files)) {
    const file = join(root, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    if (text.startsWith('#!')) chmodSync(file, 0o755);
  }
  return root;
}

/** A fresh directory per call, all removed after the test file. */
export function scratch(prefix: string): () => string {
  const cleanups: Array<() => void> = [];
  afterAll(() => cleanups.forEach((f) => f()));
  return () => {
    const d = tempDir(prefix);
    cleanups.push(d.remove);
    return d.path;
  };
}

export const cli = join(repoRoot, 'dist', 'cli.js');

/** An exec order in Gas City's shape (`gate = "cooldown"`, `$PACK_DIR` scripts). */
export function cooldownOrder(exec: string, interval = '30s', extra = ''): string {
  return `[order]\ndescription = "test order"\ngate = "cooldown"\ninterval = "${interval}"\nexec = ${JSON.stringify(exec)}\n${extra}`;
}

/**
 * A city as Gas City lays it out today: city.toml with [workspace],
 * [[rigs]] importing a rig pack, a city pack import, rig paths bound in
 * .gc/site.toml, packs with pack.toml and orders/<name>.toml.
 */
export function gasCity(root: string, extra: Record<string, string> = {}): string {
  return writeTree(root, {
    'city.toml': `[workspace]
name = "bright-lights"
timezone = "America/Los_Angeles"

[imports.maintenance]
source = "packs/maintenance"

[[rigs]]
name = "api"
prefix = "ap"
[rigs.imports.rigwork]
source = "packs/rigwork"

[[rigs]]
name = "web"
[rigs.imports.rigwork]
source = "packs/rigwork"

[defaults.rig.imports.rigwork]
source = "packs/rigwork"
`,
    'pack.toml': '[pack]\nname = "bright-lights"\nschema = 2\n',
    '.gc/site.toml': '[[rig]]\nname = "api"\npath = "rigs/api"\n\n[[rig]]\nname = "web"\npath = "rigs/web"\n',
    'rigs/api/README': 'the api rig\n',
    'rigs/web/README': 'the web rig\n',
    'packs/maintenance/pack.toml': '[pack]\nname = "maintenance"\nschema = 2\n',
    'packs/maintenance/orders/gate-sweep.toml': cooldownOrder('$PACK_DIR/assets/scripts/gate-sweep.sh'),
    'packs/maintenance/orders/digest.toml': '[order]\nformula = "mol-digest"\npool = "dog"\ntrigger = "cron"\nschedule = "0 3 * * *"\n',
    'packs/maintenance/assets/scripts/gate-sweep.sh': '#!/bin/sh\nexit 0\n',
    'packs/rigwork/pack.toml': '[pack]\nname = "rigwork"\nschema = 2\n',
    'packs/rigwork/orders/orphan-sweep.toml': cooldownOrder('$PACK_DIR/assets/scripts/orphan-sweep.sh', '5m'),
    'packs/rigwork/assets/scripts/orphan-sweep.sh': '#!/bin/sh\nexit 0\n',
    ...extra,
  });
}
