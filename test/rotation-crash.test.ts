import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CrashPoint } from '../src/delivery/rotation/crash-points.js';
import { runCli } from './support/cli.js';
import { rememberSecret, tempDir } from './support/output.js';
import { freePort } from './support/ports.js';
import { waitFor } from './support/wait.js';
import { type ServeProcess, spawnServe } from './support/process.js';
import { callApi } from './support/server.js';

/**
 * `tokenwarden serve` as a real process, killed with SIGKILL at every step of a rotation in
 * turn (TOKENWARDEN_TEST_CRASH_AT, test-only, see src/delivery/rotation/crash-points.ts), then started
 * again: each time the binding must end with exactly one live token, delivered to every sink,
 * and the token before it revoked. Run `npm run build` first.
 */
const POINTS: CrashPoint[] = ['mint', 'deliver', 'deliver-partial', 'confirm', 'grace', 'revoke', 'done'];

let dir: string;
let port: number;
let serve: ServeProcess;
let admin: string;
let args: string[];
// Not under `dir`: that is the data dir (tw.db), where no sink may write.
let sinks: string;
const sinkA = () => join(sinks, 'a.token');
const sinkB = () => join(sinks, 'b.token');
const api = (method: string, path: string, body?: unknown, token: string | null = admin) => callApi(serve.url, method, path, body, token);
const readToken = (p: string) => rememberSecret(readFileSync(p, 'utf8').trim());

async function start(env: Record<string, string> = {}): Promise<ServeProcess> {
  return spawnServe(args, env);
}

function exited(p: ServeProcess): Promise<NodeJS.Signals | null> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return Promise.resolve(p.child.signalCode);
  return new Promise((resolve) => p.child.once('exit', (_code, signal) => resolve(signal)));
}

async function settled(previousId: string) {
  return waitFor(
    async () => {
      const res = await api('GET', '/api/v1/bindings/crashy');
      const b = res.body;
      return res.status === 200 && b.state === 'active' && b.inFlight === null && b.tokenId !== previousId ? b : undefined;
    },
    'the binding to finish its rotation after the restart',
    30_000,
    100,
  );
}

beforeAll(async () => {
  dir = tempDir('crash');
  sinks = tempDir('crash-sinks');
  port = await freePort();
  const config = join(dir, 'tokenwarden.yaml');
  // `binding apply` goes through the API: its file sinks must be under delivery.fileRoots.
  writeFileSync(config, `delivery: { interval: 200ms, leaseTtl: 1s, fileRoots: [${sinks}] }\nverify: { failureLimit: 100000 }\n`);
  args = ['--port', String(port), '--store', join(dir, 'tw.db'), '--config', config, '--bootstrap-token-file', join(dir, 'admin.token')];
  serve = await start();
  admin = rememberSecret(readFileSync(join(dir, 'admin.token'), 'utf8').trim());
  expect((await api('POST', '/api/v1/actors', { name: 'bot-crash', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
});
afterAll(async () => {
  await serve?.stop();
});

describe('crash-safe rotation (SIGKILL at every step, real process, real SQLite)', () => {
  it('applies a binding from YAML with the CLI and delivers it to both sinks', async () => {
    const file = join(dir, 'binding.yaml');
    writeFileSync(
      file,
      [
        'name: crashy',
        'actor: bot-crash',
        'scopes: [metrics.read]',
        'lifetime: 1h',
        'sinks:',
        `  - { kind: file, path: ${sinkA()} }`,
        `  - { kind: file, path: ${sinkB()} }`,
        'rotation:',
        '  grace: 1s',
        `  confirm: { probe: { url: "http://127.0.0.1:${port}/auth?scope=metrics.read" } }`,
        '',
      ].join('\n'),
    );
    const env = { TOKENWARDEN_SERVER: serve.url, TOKENWARDEN_TOKEN: admin };
    const applied = await runCli(['binding', 'apply', '-f', file], env);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/crashy\s+bot-crash\s+metrics\.read\s+active/);
    expect(readToken(sinkA())).toBe(readToken(sinkB()));
    const list = await runCli(['-o', 'json', 'binding', 'list'], env);
    expect(JSON.parse(list.stdout)[0]).toMatchObject({ name: 'crashy', state: 'active', healthy: true });
  });

  for (const point of POINTS) {
    it(`resumes a rotation killed at "${point}": one live token, in every sink, the previous one revoked`, async () => {
      const previous = readToken(sinkA());
      const previousId = previous.slice(4, 16);
      await serve.stop();
      serve = await start({ TOKENWARDEN_TEST_CRASH_AT: point });
      const died = exited(serve);
      await api('POST', '/api/v1/bindings/crashy/rotate').catch(() => undefined); // the process dies while answering
      expect(await died).toBe('SIGKILL');

      serve = await start();
      const b = await settled(previousId);
      const live = (await api('GET', '/api/v1/tokens?state=active')).body.items.filter((t: any) => t.name === 'binding:crashy');
      expect(live.map((t: any) => t.id)).toEqual([b.tokenId]);
      const delivered = readToken(sinkA());
      expect(readToken(sinkB())).toBe(delivered);
      expect(delivered.slice(4, 16)).toBe(b.tokenId);
      expect((await api('GET', '/auth?scope=metrics.read', undefined, delivered)).status).toBe(200);
      expect((await api('GET', '/auth?scope=metrics.read', undefined, previous)).status).toBe(401);
      expect((await api('GET', `/api/v1/tokens/${previousId}`)).body.state).toBe('revoked');
    });
  }

  it('shows the history, and removal leaves no live token and no file behind', async () => {
    const env = { TOKENWARDEN_SERVER: serve.url, TOKENWARDEN_TOKEN: admin };
    const history = await runCli(['-o', 'json', 'binding', 'history', 'crashy'], env);
    const rows = JSON.parse(history.stdout);
    expect(rows[0]).toMatchObject({ step: 'done', reason: 'manual' });
    expect(rows.filter((r: any) => r.step === 'done').length).toBeGreaterThanOrEqual(POINTS.length);
    const last = readToken(sinkA());
    const removed = await runCli(['binding', 'delete', 'crashy'], env);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain('removed');
    expect(existsSync(sinkA()) || existsSync(sinkB())).toBe(false);
    expect((await api('GET', '/auth?scope=metrics.read', undefined, last)).status).toBe(401);
    const live = (await api('GET', '/api/v1/tokens?state=active')).body.items.filter((t: any) => t.name === 'binding:crashy');
    expect(live).toEqual([]);
  });
});
