import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/leak-check/**'],
    // Tests that spawn bin/tokenwarden.cjs run dist/: rebuilt first when the sources are newer.
    globalSetup: ['test/support/build.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Servers started by tests bind ephemeral ports; two workers keep a 2-core machine responsive.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default'],
  },
});
