import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Vitest global setup: tests that spawn `bin/tokenwarden.cjs` run `dist/`, so the build is
 * brought up to date with the sources in front of you before any test starts. A fresh build
 * (scripts/test-all.sh builds first; `npm run build` stamps dist/.built-at) costs one directory walk.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const STAMP = join(ROOT, 'dist', '.built-at');
const SOURCES = ['src', 'ui', 'bin', 'package.json', 'tsconfig.json'];

function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs;
  for (const name of readdirSync(path)) max = Math.max(max, newest(join(path, name)));
  return max;
}

export function sourcesNewerThanBuild(): boolean {
  if (!existsSync(STAMP)) return true;
  const built = statSync(STAMP).mtimeMs;
  return SOURCES.some((p) => existsSync(join(ROOT, p)) && newest(join(ROOT, p)) > built);
}

export default function setup(): void {
  if (!sourcesNewerThanBuild()) return;
  const started = Date.now();
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  console.log(`[setup] built dist/ from the current sources in ${Date.now() - started} ms`);
}
