import { statSync, existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname } from 'node:path';
import { PassThrough } from 'node:stream';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { ConfigError, loadConfig } from '../src/config/server-config.js';
import type { AppContext } from '../src/http/context.js';
import { frontThreads, hasReusePort } from '../src/forward-auth/listener.js';
import { sourceOf } from '../src/forward-auth/handler.js';
import { peerOf } from '../src/verify/peer.js';
import { VERIFY_RESULTS } from '../src/verify/verifier.js';
import { waitFor } from './support/wait.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

/**
 * listen.front: threads, the default: lean thread(s) own the main port, answer GET /auth
 * themselves and stream every other request to the app on its private socket. Users get one
 * address; /auth answers as the single-thread server did, and the API sees the real client.
 */

/** Test-only routes behind the front: what the app received, and answers a proxy can get wrong. */
const probe: NonNullable<AppContext['plugins']>[number] = (app, ctx) => {
  app.post('/test/echo', async (req, reply) => {
    reply.header('set-cookie', ['a=1; Path=/', 'b=2; Path=/']);
    reply.header('x-many', 'one');
    return {
      method: req.method,
      url: req.url,
      body: req.body,
      rawHeaders: req.raw.rawHeaders,
      peer: peerOf(req.raw),
      source: sourceOf(req.raw, ctx.config.verify.trustedProxies).ip,
    };
  });
  app.get('/test/stream', (_req, reply) => {
    const out = new PassThrough();
    reply.type('text/plain').send(out);
    let i = 0;
    const t = setInterval(() => {
      out.write(`chunk ${i}\n`);
      if (++i === 3) {
        clearInterval(t);
        out.end();
      }
    }, 20);
  });
};

/** One request on a connection of its own, so that the kernel picks the thread anew. */
function fresh(url: string, headers: Record<string, string> | string[] = {}, method = 'GET', body?: string): Promise<{ status: number; headers: import('node:http').IncomingHttpHeaders; rawHeaders: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    const all = Array.isArray(headers) ? [...headers, 'Connection', 'close', 'Host', new URL(url).host] : { connection: 'close', ...headers };
    const req = request(url, { method, agent: false, headers: all as never }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const auth = (token: string | undefined): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});
/** Everything but what differs by moment and by server: the date and the connection's own headers. */
const comparable = (r: Awaited<ReturnType<typeof fresh>>) => ({
  status: r.status,
  body: r.body,
  headers: Object.fromEntries(Object.entries(r.headers).filter(([k]) => !['date', 'connection', 'keep-alive'].includes(k))),
});

describe('the front of the main port (listen.front: threads, the default)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ plugins: [probe], config: { verify: { cacheTtl: '10m', failureLimit: 1000 } } });
  });
  afterAll(async () => s?.close());

  it('is the default, and answers GET /auth exactly as the single-thread server on the same store', async () => {
    expect(loadConfig({ env: {} }).listen.front).toBe('threads');
    // verify.threads auto: one per CPU where the port can be shared (Node >= 22.12), else one.
    expect(s.tw.front?.threads).toBe(frontThreads('auto').threads);
    expect(s.tw.url).toBe(s.tw.front!.url);
    const inline = await startTestServer({ dbPath: s.dbPath, adminToken: s.adminToken, config: { listen: { host: '127.0.0.1', port: 0, front: 'inline' } } });
    try {
      expect(inline.tw.front).toBeUndefined();
      const { token } = await mintFor(s, 'bot-front', ['metrics.read']);
      for (const [t, query] of [
        [token, '?scope=metrics.read'],
        [undefined, '?scope=metrics.read'],
        [token.slice(0, -1) + (token.endsWith('x') ? 'y' : 'x'), ''],
        [token, '?scope=admin:token'],
        [token, '?scope=admin:token&scope=metrics.read&satisfy=any'],
        ['twd_garbage', ''],
      ] as const) {
        const [front, single] = [await fresh(`${s.url}/auth${query}`, auth(t)), await fresh(`${inline.url}/auth${query}`, auth(t))];
        expect(comparable(front)).toEqual(comparable(single));
      }
      expect((await fresh(`${s.url}/auth?scope=metrics.read`, auth(token))).headers['x-tokenwarden-actor']).toBe('bot-front');
    } finally {
      await inline.close();
    }
  });

  it('hears of a revocation made by another server on the same store within 1 s, despite its 10-minute cache', async () => {
    const other = await startTestServer({ dbPath: s.dbPath, adminToken: s.adminToken, config: { listen: { host: '127.0.0.1', port: 0, front: 'inline' } } });
    try {
      const { token, id } = await mintFor(s, 'bot-front', ['metrics.read']);
      expect((await fresh(`${s.url}/auth?scope=metrics.read`, auth(token))).status).toBe(200); // cached in the front thread
      expect((await other.api('DELETE', `/api/v1/tokens/${id}`)).status).toBe(200);
      const t0 = Date.now();
      await waitFor(async () => (await fresh(`${s.url}/auth?scope=metrics.read`, auth(token))).status === 401, 'the front to refuse it', 3000, 20);
      expect(Date.now() - t0).toBeLessThan(1000);
    } finally {
      await other.close();
    }
  });

  it('passes the API through: method, query, body, duplicate headers, two set-cookie, status and problem JSON', async () => {
    const r = await fresh(`${s.url}/test/echo?x=1&y=2`, ['Content-Type', 'application/json', 'X-Dup', 'one', 'x-dup', 'two', 'Content-Length', '17'], 'POST', JSON.stringify({ hello: 'world' }));
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body);
    expect(seen).toMatchObject({ method: 'POST', url: '/test/echo?x=1&y=2', body: { hello: 'world' } });
    expect(seen.rawHeaders.join('|')).toContain('X-Dup|one|x-dup|two'); // both, in order and case
    expect(seen.rawHeaders.join('|')).toContain('Content-Type|application/json');
    expect(r.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'set-cookie')).toHaveLength(2);
    expect(r.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    // Problem JSON and status from the app, unchanged.
    const missing = await fresh(`${s.url}/api/v1/nothing-here`, auth(s.adminToken));
    expect(missing.status).toBe(404);
    expect(missing.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(JSON.parse(missing.body).detail).toContain('no route GET /api/v1/nothing-here');
    const created = await s.api('POST', '/api/v1/actors', { name: 'bot-through', kind: 'service', scopes: ['metrics.read'] });
    expect(created.status).toBe(201);
    expect((await s.api('POST', '/api/v1/actors', { name: 'bot-through', kind: 'service', nope: 1 })).status).toBe(400);
  });

  it('streams: a chunked answer arrives in pieces, a body over the limit gets 413, HEAD gets headers only', async () => {
    const stream = await fresh(`${s.url}/test/stream`);
    expect(stream.status).toBe(200);
    expect(stream.headers['transfer-encoding']).toBe('chunked');
    expect(stream.body).toBe('chunk 0\nchunk 1\nchunk 2\n');
    const big = await fresh(`${s.url}/api/v1/actors`, { ...auth(s.adminToken), 'content-type': 'application/json' }, 'POST', JSON.stringify({ name: 'x'.repeat(70 * 1024) }));
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).detail).toContain('64 KiB');
    const head = await fresh(`${s.url}/healthz`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it("gives the app the client's address: a peer header from outside is dropped, X-Forwarded-For counts only from a trusted peer", async () => {
    const forged = JSON.parse((await fresh(`${s.url}/test/echo`, { 'x-tokenwarden-peer': '203.0.113.9', 'X-Tokenwarden-Peer-Tls': '1' }, 'POST')).body);
    expect(forged.peer).toEqual({ address: '127.0.0.1', tls: false });
    expect(forged.rawHeaders.map((h: string) => h.toLowerCase())).not.toContain('x-tokenwarden-peer-tls');
    // 127.0.0.1 is a trusted proxy by default: its X-Forwarded-For names the client, as without the front.
    const proxied = JSON.parse((await fresh(`${s.url}/test/echo`, { 'x-forwarded-for': '198.51.100.7' }, 'POST')).body);
    expect(proxied.source).toBe('198.51.100.7');
    // And what the API records as last use comes from the same rule.
    const { token, id } = await mintFor(s, 'bot-front', ['metrics.read']);
    expect((await fresh(`${s.url}/api/v1/whoami`, { ...auth(token), 'x-tokenwarden-peer': '203.0.113.9', 'user-agent': 'front-test/1' })).status).toBe(200);
    await expect.poll(async () => (await s.api('GET', `/api/v1/tokens/${id}`)).body.lastUsed?.ip, { timeout: 5000 }).toBe('127.0.0.1');
  });
});

describe('the front: its socket, shutdown, and who gets it', () => {
  it('keeps the API on a socket in a 0700 directory, removed on shutdown with the port closed', async () => {
    const s = await startTestServer();
    const socket = s.tw.app.server.address() as string;
    expect(typeof socket).toBe('string');
    expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
    expect(statSync(socket).isSocket()).toBe(true);
    expect((await fresh(`${s.url}/healthz`)).status).toBe(200);
    await s.close();
    expect(existsSync(dirname(socket))).toBe(false);
    await expect(fresh(`${s.url}/healthz`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('is restarted on the same port when its thread dies; the API answers again', async () => {
    const s = await startTestServer();
    try {
      await (s.tw.front as unknown as { worker: Worker }).worker.terminate();
      await waitFor(async () => (await fresh(`${s.url}/readyz`)).status === 200, 'the front to come back', 10_000);
      expect((await s.api('GET', '/api/v1/whoami')).status).toBe(200);
      expect((await s.api('GET', '/metrics')).body).toMatch(/^tokenwarden_auth_listener_restarts_total 1$/m);
      expect(readFileSync(s.logFile, 'utf8')).toContain('the front stopped; restarting it');
    } finally {
      await s.close();
    }
  });

  it('a server on an injected clock keeps one thread (the front threads run on the system clock)', async () => {
    const s = await startTestServer({ clock: new ManualClock() });
    try {
      expect(s.tw.front).toBeUndefined();
      expect((await s.api('GET', '/api/v1/whoami')).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});

describe('verify.threads', () => {
  it('reads auto or a number, from the file or TOKENWARDEN_VERIFY_THREADS, and refuses others naming the field', () => {
    expect(loadConfig({ env: {} }).verify.threads).toBe('auto');
    expect(loadConfig({ env: { TOKENWARDEN_VERIFY_THREADS: '1' } }).verify.threads).toBe(1);
    expect(loadConfig({ env: { TOKENWARDEN_VERIFY_THREADS: 'auto' } }).verify.threads).toBe('auto');
    expect(loadConfig({ env: { TOKENWARDEN_VERIFY_THREADS: '2' } }).verify.threads).toBe(2);
    expect(() => loadConfig({ env: { TOKENWARDEN_VERIFY_THREADS: '0' } })).toThrow(/verify\.threads/);
    expect(() => loadConfig({ env: {}, overrides: { verify: { threads: 'many' } } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { TOKENWARDEN_LISTEN_FRONT: 'fast' } })).toThrow(/listen\.front/);
  });

  it('runs several threads only where the port can be shared (reusePort), one otherwise, saying why', () => {
    expect(frontThreads(2, true)).toEqual({ threads: 2, reusePort: true });
    expect(frontThreads(1, true)).toEqual({ threads: 1, reusePort: false });
    const fallback = frontThreads(2, false);
    expect(fallback).toMatchObject({ threads: 1, reusePort: false });
    expect(fallback.note).toMatch(/verify\.threads 2 needs Node >= 22\.12/);
    expect(frontThreads('auto', true).threads).toBeGreaterThanOrEqual(1);
    // The default says nothing where the runtime cannot share a port: auto is one thread there.
    expect(frontThreads('auto', false)).toEqual({ threads: 1, reusePort: false });
    expect(hasReusePort('22.12.0', 'linux')).toBe(true);
    expect(hasReusePort('24.1.0', 'linux')).toBe(true);
    expect(hasReusePort('22.11.0', 'linux')).toBe(false);
    expect(hasReusePort('20.19.0', 'linux')).toBe(false);
    expect(hasReusePort('24.1.0', 'darwin')).toBe(false);
  });

  it.runIf(!hasReusePort())('without reusePort (Node 20) serves with one thread and logs why', async () => {
    const s = await startTestServer({ config: { verify: { threads: 2 } } });
    try {
      expect(s.tw.front?.threads).toBe(1);
      expect(readFileSync(s.logFile, 'utf8')).toContain('needs Node >= 22.12');
      expect((await fresh(`${s.url}/auth`)).status).toBe(401);
    } finally {
      await s.close();
    }
  });

  it.runIf(hasReusePort())('threads: 2 count failures together, with the API: an address gets verify.failureLimit failures in all', async () => {
    const s = await startTestServer({ config: { verify: { threads: 2, failureLimit: 10 } } });
    try {
      expect(s.tw.front?.threads).toBe(2);
      const garbage = (i: number) => auth(`twd_${'x'.repeat(12)}_${String(i).padStart(49, '0')}`);
      // A good client, verified once on one thread (one connection) before its address is limited.
      const { token } = await mintFor(s, 'bot-good', ['metrics.read']);
      expect((await fresh(`${s.url}/auth`, auth(token))).status).toBe(200);
      // Fresh connections, spread by the kernel over both threads: ten failures in all, then 429 from whichever thread.
      const failed = [];
      for (let i = 0; i < 10; i++) failed.push((await fresh(`${s.url}/auth`, garbage(i))).status);
      expect(failed).toEqual(Array(10).fill(401));
      const slots = (s.tw.front as unknown as { slots: { counts: Float64Array }[] }).slots;
      for (const slot of slots) expect(slot.counts[VERIFY_RESULTS.indexOf('malformed')]! + slot.counts[VERIFY_RESULTS.indexOf('unknown')]!).toBeGreaterThan(0);
      const after = await Promise.all(Array.from({ length: 20 }, (_, i) => fresh(`${s.url}/auth`, garbage(100 + i))));
      expect(after.map((r) => r.status)).toEqual(Array(20).fill(429));
      // The limit spares the good client on every thread, not only on the one that verified it.
      const good = await Promise.all(Array.from({ length: 20 }, () => fresh(`${s.url}/auth`, auth(token))));
      expect(good.map((r) => r.status)).toEqual(Array(20).fill(200));
      // The API (the main thread) counts into the same table: the address is limited there too.
      expect((await s.api('GET', '/api/v1/whoami', undefined, 'twd_garbage')).status).toBe(429);
    } finally {
      await s.close();
    }
  });

  it.runIf(hasReusePort())('threads: 2 share the port, and a revocation reaches every one of them within 250 ms', async () => {
    const s = await startTestServer({ config: { verify: { threads: 2, cacheTtl: '10m', failureLimit: 1000 } } });
    try {
      expect(s.tw.front?.threads).toBe(2);
      const { token, id } = await mintFor(s, 'bot-threads', ['metrics.read']);
      // Fresh connections: the kernel spreads them over both threads, and each caches the token.
      const before = await Promise.all(Array.from({ length: 40 }, () => fresh(`${s.url}/auth?scope=metrics.read`, auth(token))));
      expect(before.map((r) => r.status)).toEqual(Array(40).fill(200));
      // White-box: each thread's own counts show that both answered.
      const slots = (s.tw.front as unknown as { slots: { counts: Float64Array }[] }).slots;
      const revokedAnswers = () => slots.map((slot) => slot.counts[VERIFY_RESULTS.indexOf('revoked')]!);
      for (const slot of slots) expect(slot.counts[VERIFY_RESULTS.indexOf('ok')]).toBeGreaterThan(0);
      expect((await s.api('DELETE', `/api/v1/tokens/${id}`)).status).toBe(200);
      const t0 = Date.now();
      await waitFor(
        async () => (await Promise.all(Array.from({ length: 40 }, () => fresh(`${s.url}/auth?scope=metrics.read`, auth(token))))).every((r) => r.status === 401),
        'every thread to refuse the revoked token',
        1000,
        5,
      );
      expect(Date.now() - t0).toBeLessThan(250);
      for (const n of revokedAnswers()) expect(n).toBeGreaterThan(0); // every thread refused it
    } finally {
      await s.close();
    }
  });

  it('a token verified on one port is spared by the shared limit on the other: authListen and the main port both hear of it', async () => {
    const s = await startTestServer({ config: { authListen: { host: '127.0.0.1', port: 0 }, verify: { failureLimit: 5 } } });
    try {
      expect(s.tw.front).toBeDefined();
      const authUrl = s.tw.authListener!.url;
      const garbage = (i: number) => auth(`twd_${'x'.repeat(12)}_${String(i).padStart(49, '0')}`);
      const seenOnAuthPort = await mintFor(s, 'bot-side-port', ['metrics.read']);
      const seenOnMainPort = await mintFor(s, 'bot-main-port', ['metrics.read']);
      expect((await fresh(`${authUrl}/auth`, auth(seenOnAuthPort.token))).status).toBe(200);
      expect((await fresh(`${s.url}/auth`, auth(seenOnMainPort.token))).status).toBe(200);
      const failed = [];
      for (let i = 0; i < 5; i++) failed.push((await fresh(`${s.url}/auth`, garbage(i))).status);
      expect(failed).toEqual(Array(5).fill(401));
      // One limit for the process: the address is limited on both ports.
      expect((await fresh(`${s.url}/auth`, garbage(100))).status).toBe(429);
      expect((await fresh(`${authUrl}/auth`, garbage(101))).status).toBe(429);
      // Each token was verified on one port only; the other port's thread heard of it through the main thread.
      expect((await fresh(`${s.url}/auth`, auth(seenOnAuthPort.token))).status).toBe(200);
      expect((await fresh(`${authUrl}/auth`, auth(seenOnMainPort.token))).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});
