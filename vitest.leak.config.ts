import { defineConfig } from 'vitest/config';

/** Runs after the whole suite: scans every log and audit row the suite wrote for secrets. */
export default defineConfig({
  test: { include: ['test/leak-check/**/*.test.ts'], testTimeout: 120_000 },
});
