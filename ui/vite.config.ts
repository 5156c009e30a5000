import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// Built into dist/webui and served by tokenwarden itself under /ui/ (src/http/ui.ts).
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/ui/',
  publicDir: false,
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../dist/webui', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // One small app: a single chunk keeps the page to three requests.
    modulePreload: { polyfill: false },
  },
});
