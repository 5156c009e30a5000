import { createServer } from 'node:net';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/server-config.js';
import { startTokenwarden } from '../src/server.js';
import { tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';
import { join } from 'node:path';

/**
 * `authListen:` — GET /auth on a second port, served by a thread of its own with its own
 * caches. It must answer exactly like the main port's /auth, learn of every revocation and
 * grant change at once, count into the main /metrics, record last use, and come back if it dies.
 */
let s: TestServer;
let authUrl: string;
beforeAll(async () => {
  // A long cache: only the events from the main thread can make the listener refuse in time.
  s = await startTestServer({ config: { authListen: { port: 0 }, verify: { cacheTtl: '10m', failureLimit: 1000 } } });
  authUrl = s.tw.authUrl!;
});
afterAll(async () => {
  await s?.close();
});

const check = (base: string, token: string | undefined, query = '?scope=metrics.read', headers: Record<string, string> = {}) =>
  fetch(`${base}/auth${query}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });

/** Polls until the listener answers `status`; returns how long that took. */
async function until(status: number, token: string, limitMs: number): Promise<number> {
  const t0 = Date.now();
  await waitFor(async () => (await check(authUrl, token)).status === status, `the auth listener to answer ${status}`, limitMs, 5);
  return Date.now() - t0;
}

async function verificationCounts(): Promise<Record<string, number>> {
  const res = await s.api('GET', '/metrics');
  expect(res.status).toBe(200);
  const out: Record<string, number> = {};
  for (const m of (res.body as string).matchAll(/^tokenwarden_verifications_total\{result="(\w+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

const identity = (h: Headers) =>
  Object.fromEntries([...h].filter(([k]) => k.startsWith('x-tokenwarden-') || k === 'x-auth-request-user' || k === 'www-authenticate'));

describe('authListen: GET /auth on a thread of its own', () => {
  it('answers exactly like /auth on the main port: 200 with identity headers, 401, 403', async () => {
    expect(authUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(authUrl).not.toBe(s.url);
    const { token } = await mintFor(s, 'bot-listener', ['metrics.read']);
    for (const [t, query, status] of [
      [token, '?scope=metrics.read', 200],
      [undefined, '?scope=metrics.read', 401],
      // the last character changed (to another one: a token may end in "x" already)
      [token.slice(0, -1) + (token.endsWith('x') ? 'y' : 'x'), '?scope=metrics.read', 401],
      [token, '?scope=admin:token', 403],
      [token, '?scope=admin:token&scope=metrics.read&satisfy=any', 200],
    ] as const) {
      const [main, listener] = [await check(s.url, t, query), await check(authUrl, t, query)];
      expect([query, listener.status]).toEqual([query, status]);
      expect(listener.status).toBe(main.status);
      expect(identity(listener.headers)).toEqual(identity(main.headers));
    }
    expect((await check(authUrl, token)).headers.get('x-tokenwarden-actor')).toBe('bot-listener');
    // Only /auth: the API stays on the main port.
    const api = await fetch(`${authUrl}/api/v1/whoami`, { headers: { authorization: `Bearer ${s.adminToken}` } });
    expect(api.status).toBe(404);
    expect(await api.text()).toContain('only GET /auth');
  });

  it('refuses a token revoked through the API at once, despite its 10-minute cache', async () => {
    const { token, id } = await mintFor(s, 'bot-listener', ['metrics.read']);
    expect((await check(authUrl, token)).status).toBe(200); // now in the listener's cache
    expect((await s.api('DELETE', `/api/v1/tokens/${id}`)).status).toBe(200);
    // Told by the main thread (a few ms); the store poll alone would take up to 500 ms.
    expect(await until(401, token, 1000)).toBeLessThan(250);
  });

  it('answers 403 as soon as the identity loses the scope, and 200 when it is given back', async () => {
    await s.api('POST', '/api/v1/actors', { name: 'bot-listener-roles', kind: 'service', roles: ['metrics-read'] });
    const { token } = await mintFor(s, 'bot-listener-roles', ['metrics.read']);
    expect((await check(authUrl, token)).status).toBe(200);
    expect((await s.api('PATCH', '/api/v1/actors/bot-listener-roles', { roles: [] })).status).toBe(200);
    expect(await until(403, token, 500)).toBeLessThan(500);
    expect((await s.api('PATCH', '/api/v1/actors/bot-listener-roles', { roles: ['metrics-read'] })).status).toBe(200);
    expect(await until(200, token, 500)).toBeLessThan(500);
  });

  it('counts its checks in the main /metrics and records last use in the store', async () => {
    const { token, id } = await mintFor(s, 'bot-listener', ['metrics.read']);
    const before = await verificationCounts(); // this scrape's own check counts as one ok on the main port
    expect((await check(authUrl, token, '?scope=admin:token')).status).toBe(403);
    expect((await check(authUrl, 'twd_nope')).status).toBe(401);
    for (let i = 0; i < 5; i++) expect((await check(authUrl, token, undefined, { 'user-agent': 'listener-test/1' })).status).toBe(200);
    const after = await verificationCounts();
    expect(after.ok! - before.ok!).toBe(6 + 1); // 5 plus the 403's valid token, plus the scrape's own check
    expect(after.insufficient_scope! - before.insufficient_scope!).toBe(1);
    expect(after.malformed! - before.malformed!).toBe(1);
    await expect
      .poll(async () => (await s.api('GET', `/api/v1/tokens/${id}`)).body.lastUsed?.userAgent, { timeout: 5000 })
      .toBe('listener-test/1');
  });

  it('comes back on the same port after its thread dies, and says so in /readyz meanwhile', async () => {
    const { token } = await mintFor(s, 'bot-listener', ['metrics.read']);
    const listener = s.tw.authListener!;
    // White-box: end the thread as a crash would.
    await (listener as unknown as { worker: Worker }).worker.terminate();
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('auth listener');
    await expect.poll(async () => (await fetch(`${s.url}/readyz`)).status, { timeout: 5000 }).toBe(200);
    expect(s.tw.authListener!.url).toBe(authUrl);
    expect((await check(authUrl, token)).status).toBe(200);
    expect((await s.api('GET', '/metrics')).body).toMatch(/^tokenwarden_auth_listener_restarts_total 1$/m);
  });
});

describe('authListen: bad settings and shutdown', () => {
  it('refuses a host without a port, the main port again, and a port that is not a number, naming the field', () => {
    expect(() => loadConfig({ env: { TOKENWARDEN_AUTH_LISTEN_HOST: '127.0.0.1' } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { TOKENWARDEN_AUTH_LISTEN_HOST: '127.0.0.1' } })).toThrow(/authListen\.port/);
    expect(loadConfig({ env: { TOKENWARDEN_AUTH_LISTEN_PORT: '9999' } }).authListen).toEqual({ host: '127.0.0.1', port: 9999 });
    expect(() => loadConfig({ env: { TOKENWARDEN_AUTH_LISTEN_PORT: '8080' } })).toThrow(/authListen\.port: 8080 is already listen\.port/);
    expect(() => loadConfig({ env: { TOKENWARDEN_AUTH_LISTEN_PORT: 'x' } })).toThrow(/TOKENWARDEN_AUTH_LISTEN_PORT must be a whole number/);
  });

  it('fails the start with the reason when its port is taken, leaving nothing listening', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const config = loadConfig({
      env: {},
      overrides: { listen: { host: '127.0.0.1', port: 0 }, store: { url: join(tempDir('listener-taken'), 'tw.db') }, authListen: { port }, log: { level: 'silent' } },
    });
    try {
      await expect(startTokenwarden(config)).rejects.toThrow(`the auth listener cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
    } finally {
      taken.close();
    }
  });

  it('closes its port on shutdown', async () => {
    const own = await startTestServer({ config: { authListen: { port: 0 } } });
    const url = own.tw.authUrl!;
    expect((await check(url, undefined)).status).toBe(401);
    await own.close();
    await expect(check(url, undefined)).rejects.toThrow();
  });
});
