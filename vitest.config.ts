import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The cluster campaign judges timing (a failover bound, renew deadlines) on
 * real processes: it runs after everything else, alone, so the other heavy
 * suites (the kill harness) do not share its two cores.
 */
const NEMESIS = ['test/cluster/jepsen.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    // The WAL fsyncs; on a shared 2-core machine a busy disk can stretch a test.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      { extends: true, test: { name: 'main', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...NEMESIS] } },
      { extends: true, test: { name: 'nemesis', include: NEMESIS, sequence: { groupOrder: 1 } } },
    ],
  },
});
