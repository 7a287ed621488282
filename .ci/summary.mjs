// Reads the log of `npm test` and prints one plain closing line,
// "summary: N passed, N failed, N skipped", adding up every cargo test
// binary and the vitest run (vitest's own summary is not a line CI reads).
import { readFileSync } from 'node:fs';

const log = readFileSync(process.argv[2], 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
const total = { passed: 0, failed: 0, skipped: 0 };

// cargo: "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ..."
for (const m of log.matchAll(/^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored;/gm)) {
  total.passed += Number(m[1]);
  total.failed += Number(m[2]);
  total.skipped += Number(m[3]);
}

// vitest: "      Tests  2 failed | 22 passed | 1 skipped (25)"
for (const m of log.matchAll(/^\s*Tests\s+(.+?)\s+\(\d+\)\s*$/gm)) {
  for (const part of m[1].split('|')) {
    const [, n, kind] = part.trim().match(/^(\d+) (\w+)/) ?? [];
    if (kind === 'passed') total.passed += Number(n);
    else if (kind === 'failed') total.failed += Number(n);
    else if (kind === 'skipped' || kind === 'todo') total.skipped += Number(n);
  }
}

console.log(`summary: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
