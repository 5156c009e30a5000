import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BIN, runCli } from './support/cli.js';
import { tempDir } from './support/output.js';

/**
 * The CLI starts like a native tool: `--version` and `--help` load nothing but a few lines of it,
 * and each command loads only what it uses (run `npm run build` first). Modules are recorded by
 * a loader hook (support/load-log.mjs) that writes every resolved URL to a file.
 */
const ROOT = pathToFileURL(resolve('.')).href;

function loaded(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; modules: string[] } {
  const log = join(tempDir('cli-start'), 'modules.log');
  const r = spawnSync(process.execPath, ['--import', resolve('test/support/load-log.mjs'), BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TOKENWARDEN_CLI_CONFIG: '/nonexistent/cli.yaml', TOKENWARDEN_LOAD_LOG: log, ...env },
    encoding: 'utf8',
  });
  const urls = readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith('file:'));
  // Paths relative to the checkout, packages by name.
  const modules = [...new Set(urls.map((u) => /\/node_modules\/((@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? u.replace(`${ROOT}/`, '')))].sort();
  return { status: r.status, stdout: r.stdout, modules };
}

const HEAVY = ['fastify', 'kysely', 'better-sqlite3', 'pg', '@kubernetes/client-node', '@sinclair/typebox', 'yaml', 'pino', 'prom-client', 'undici', 'jose'];

describe('CLI start', () => {
  it('--version and --help load no package at all, not even the command parser', () => {
    for (const flag of ['--version', '-V', '--help', '-h']) {
      const r = loaded([flag]);
      expect([flag, r.status]).toEqual([flag, 0]);
      expect(r.modules).toEqual(['bin/tokenwarden.js', 'dist/cli/fast.js', 'dist/cli/version.js']);
    }
  });

  it('token list over HTTP loads the parser and the token commands only: no server, database, Kubernetes or YAML library', () => {
    const r = loaded(['token', 'list'], { TOKENWARDEN_SERVER: 'http://127.0.0.1:1', TOKENWARDEN_TOKEN: 'twd_x' });
    expect(r.status).toBe(5); // nothing listens there: the request was made
    expect(r.modules).toContain('commander');
    expect(r.modules).toContain('dist/cli/tokens.js');
    expect(r.modules.filter((m) => HEAVY.includes(m))).toEqual([]);
    expect(r.modules.filter((m) => m.startsWith('dist/') && !m.startsWith('dist/cli/'))).toEqual([]);
    expect(r.modules).not.toContain('dist/cli/admin.js');
  });

  it('the fast answers are byte for byte what the command parser prints', async () => {
    const fast = await runCli(['--help']);
    const parser = await runCli(['help']); // the same text, rendered by commander itself
    expect(fast.code).toBe(0);
    expect(fast.stdout).toBe(parser.stdout);
    expect(fast.stdout).toContain('token ');
    expect(fast.stdout).toContain('binding ');
    const version = await runCli(['--version']);
    expect(version.stdout).toBe(`${JSON.parse(readFileSync('package.json', 'utf8')).version}\n`);
  });

  it('a terminal, forced colours or more arguments take the parser path, with the same results', async () => {
    const colours = await runCli(['--help'], { FORCE_COLOR: '0' });
    expect(colours.stdout).toBe((await runCli(['--help'])).stdout);
    const r = loaded(['--version', '--help']);
    expect(r.status).toBe(0);
    expect(r.modules).toContain('commander');
  });
});
