import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, runCli } from './support/cli.js';

/**
 * The CLI starts like a native tool: `--version` and `--help` load nothing but a few lines of it,
 * and each command loads only what it uses (run `npm run build` first). What a process loads is
 * read from Node's own debug log (NODE_DEBUG=module,esm): every CommonJS file, built-in and ES
 * module it loads, and whether the ES module loader came up at all.
 */
const ROOT = resolve('.');

function loaded(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; modules: string[]; builtins: string[]; esm: boolean } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TOKENWARDEN_CLI_CONFIG: '/nonexistent/cli.yaml', NODE_DEBUG: 'module,esm', ...env },
    encoding: 'utf8',
  });
  const files = [
    ...[...r.stderr.matchAll(/^MODULE \d+: load "([^"]+)"/gm)].map((m) => m[1]!),
    ...[...r.stderr.matchAll(/^ESM \d+: Storing file:\/\/(\S+)/gm)].map((m) => decodeURIComponent(m[1]!)),
  ];
  const builtins = [...r.stderr.matchAll(/^MODULE \d+: load built-in module (?:node:)?(\S+)/gm)].map((m) => m[1]!);
  // Paths relative to the checkout, packages by name.
  const modules = [...new Set(files.map((f) => /\/node_modules\/((@[^/]+\/)?[^/]+)\//.exec(f)?.[1] ?? relative(ROOT, f)))].sort();
  return { status: r.status, stdout: r.stdout, modules, builtins: [...new Set(builtins)].sort(), esm: /^ESM \d+:/m.test(r.stderr) };
}

const HEAVY = ['fastify', 'kysely', 'better-sqlite3', 'pg', '@kubernetes/client-node', '@sinclair/typebox', 'yaml', 'pino', 'prom-client', 'undici', 'jose'];
const UNREACHABLE = { TOKENWARDEN_SERVER: 'http://127.0.0.1:1', TOKENWARDEN_TOKEN: 'twd_x' };

describe('CLI start', () => {
  it('--version and --help load no package at all, not even the command parser, and no ES module loader', () => {
    for (const flag of ['--version', '-V', '--help', '-h']) {
      const r = loaded([flag]);
      expect([flag, r.status]).toEqual([flag, 0]);
      expect(r.modules).toEqual(['bin/tokenwarden.cjs', 'dist/cli/fast.cjs', 'package.json']);
      expect(r.esm).toBe(false);
    }
  });

  it('token list over HTTP loads the parser and the token commands only: no server, database, Kubernetes or YAML library, no node:http, no ES module loader', () => {
    const r = loaded(['token', 'list'], UNREACHABLE);
    expect(r.status).toBe(5); // nothing listens there: the request was made
    expect(r.modules).toContain('commander');
    expect(r.modules).toContain('dist/cli/tokens.cjs');
    expect(r.modules.filter((m) => HEAVY.includes(m))).toEqual([]);
    expect(r.modules.filter((m) => m.startsWith('dist/') && !m.startsWith('dist/cli/'))).toEqual([]);
    expect(r.modules).not.toContain('dist/cli/admin.cjs');
    expect(r.builtins).toContain('net');
    expect(r.builtins.filter((b) => ['http', 'https', 'tls'].includes(b))).toEqual([]);
    expect(r.esm).toBe(false);
  });

  it('the other commands that only talk to a server load no service code and no ES module loader either', () => {
    for (const args of [['whoami'], ['actor', 'list'], ['actor', 'create', 'bot-x', '--kind', 'service'], ['role', 'list'], ['binding', 'list'], ['notify', 'list']]) {
      const r = loaded(args, UNREACHABLE);
      expect({ args, status: r.status }).toEqual({ args, status: 5 });
      expect({ args, heavy: r.modules.filter((m) => HEAVY.includes(m)), services: r.modules.filter((m) => m.startsWith('dist/') && !m.startsWith('dist/cli/')), esm: r.esm }).toEqual({ args, heavy: [], services: [], esm: false });
    }
    // Without --kind, the kind comes from the naming rule (authority/catalogue.ts): that one ES module, not the issuance policy and its configuration schema.
    const r = loaded(['actor', 'create', 'bot-x'], UNREACHABLE);
    expect(r.status).toBe(5);
    expect(r.modules.filter((m) => HEAVY.includes(m))).toEqual([]);
    expect(r.modules.filter((m) => m.startsWith('dist/') && !m.startsWith('dist/cli/'))).toEqual(['dist/authority/catalogue.js']);
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
