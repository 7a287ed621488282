// `npm run demo`: the example city for 40 s on the embedded defaults (state
// .orderly, audit sqlite:.orderly/audit.db), with a word on what it shows.
// The example bodies are stand-ins: lib/sweep.sh finds work on a share of its
// ticks at random; a real city's bodies decide for themselves.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const percent = process.env.ORDERLY_DEMO_WORK_PERCENT ?? '20';
const seconds = process.argv[2] ?? '40s';

console.log(
  `demo: the example city (examples/city: 6 city orders, 5 orders in each of 3 rigs) for ${seconds}.\n` +
    `demo: every body is examples/city/lib/sweep.sh, a stand-in that does work on ${percent}% of its ticks at random\n` +
    '      (ORDERLY_DEMO_WORK_PERCENT) and otherwise exits 100: a no-op, which writes nothing to the database.\n' +
    'demo: one line per fire; did-work runs show the line their body printed and are written to the audit database.\n',
);
const run = spawnSync(process.execPath, [join(root, 'dist', 'cli.js'), 'run', join(root, 'examples', 'city'), '--for', seconds], {
  stdio: 'inherit',
  env: { ...process.env, ORDERLY_DEMO_WORK_PERCENT: percent },
});
if (run.status === 0) {
  console.log('\ndemo: the state is in .orderly; try `npx orderly-dispatch history`, `feed` and `doctor` (README, Usage).');
}
process.exit(run.status ?? 1);
