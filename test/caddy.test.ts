import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderShipped } from './support/nginx.js';
import { LOG_DIR, tempDir } from './support/output.js';
import { freePort } from './support/ports.js';
import { waitFor } from './support/wait.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

const CACHE_TTL_MS = 2000;
let tw: TestServer;
let caddy: ChildProcess;
let base: string;
let metricsToken: string;
let otherToken: string;
const caddyLog = join(LOG_DIR, `caddy-${process.pid}.log`);

const get = (path: string, token?: string) => fetch(`${base}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

beforeAll(async () => {
  tw = await startTestServer({ config: { verify: { failureLimit: 5, cacheTtl: `${CACHE_TTL_MS}ms` } } });
  metricsToken = (await mintFor(tw, 'bot-prometheus', ['metrics.read'])).token;
  otherToken = (await mintFor(tw, 'bot-other', ['token.introspect'])).token;
  const dir = tempDir('caddy');
  const root = join(dir, 'www');
  for (const d of ['www', 'data', 'config', 'home']) mkdirSync(join(dir, d));
  writeFileSync(join(root, 'metrics'), 'node_up 1\n');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const site = renderShipped('deploy/caddy/Caddyfile', { SITE: base, TOKENWARDEN: new URL(tw.url).host, SCOPE: 'metrics.read', ROOT: root });
  // The harness only: no admin endpoint, no certificates, storage in the temp dir.
  const caddyfile = join(dir, 'Caddyfile');
  writeFileSync(caddyfile, `{\n\tadmin off\n\tauto_https off\n\tstorage file_system ${join(dir, 'data')}\n}\n\n${site}`);
  const log = openSync(caddyLog, 'a');
  caddy = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], {
    env: { PATH: process.env.PATH, HOME: join(dir, 'home'), XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') },
    stdio: ['ignore', log, log],
  });
  await waitFor(async () => {
    if (caddy.exitCode !== null) throw new Error(`caddy exited with ${caddy.exitCode}: ${readFileSync(caddyLog, 'utf8').slice(-2000)}`);
    return (await fetch(`${base}/metrics`)).status > 0;
  }, 'caddy to listen', 20_000);
});

afterAll(async () => {
  if (caddy && caddy.exitCode === null && caddy.signalCode === null) {
    const exited = new Promise((r) => caddy.once('exit', r));
    caddy.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  }
  await tw?.close();
});

describe('Caddy forward_auth with the shipped Caddyfile', () => {
  it('serves the protected file to a valid token', async () => {
    const res = await get('/metrics', metricsToken);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('node_up 1\n');
  });

  it('answers 401 with the Bearer challenge for no token and for a bad one', async () => {
    const none = await get('/metrics');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="tokenwarden"');
    const bad = await get('/metrics', 'twd_nonsense');
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('answers 403 insufficient_scope for a valid token without the scope', async () => {
    const res = await get('/metrics', otherToken);
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  });

  it('answers 401 for a revoked token within the cache bound', async () => {
    const { token, id } = await mintFor(tw, 'bot-prometheus', ['metrics.read']);
    expect((await get('/metrics', token)).status).toBe(200);
    const revokedAt = Date.now();
    expect((await tw.api('POST', `/api/v1/tokens/${id}/revoke`, {})).status).toBe(200);
    let status = 200;
    while (status === 200 && Date.now() - revokedAt < CACHE_TTL_MS + 1000) {
      status = (await get('/metrics', token)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(401);
    expect(Date.now() - revokedAt).toBeLessThan(CACHE_TTL_MS);
  });

  it('passes tokenwarden 429 with Retry-After straight through', async () => {
    // earlier cases already spent some of this source's 5 failures
    for (let i = 0; i < 5; i++) expect([401, 429]).toContain((await get('/metrics', `twd_bad${i}`)).status);
    const limited = await get('/metrics', 'twd_bad_again');
    expect(limited.status).toBe(429);
    // the seconds left in verify.failureWindow (1m by default)
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    // the limit throttles failures, never good clients: the valid token from that source still passes
    expect((await get('/metrics', metricsToken)).status).toBe(200);
  });
});
