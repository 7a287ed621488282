import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', cli: 'src/cli/main.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  // The CJS build needs import.meta.url (used by src/native.ts) shimmed.
  shims: true,
  target: 'node20',
  platform: 'node',
  clean: true,
  sourcemap: true,
});
