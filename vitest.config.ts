import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // The WAL fsyncs; on a shared 2-core machine a busy disk can stretch a test.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
