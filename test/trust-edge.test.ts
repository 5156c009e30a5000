import { connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ManualClock, systemClock } from '../src/clock.js';
import { createGate, listenGate } from '../src/forward-auth/gate/proxy.js';
import { remoteCheck } from '../src/forward-auth/gate/remote-check.js';
import { createLogger } from '../src/log.js';
import { loadConfig } from '../src/config/server-config.js';
import { mintToken } from '../src/token/format.js';
import { clientAddress, proxyTrust } from '../src/verify/request-origin.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

/**
 * Issue 13, points 4–6: one source-address rule, a failure limit that throttles failures and
 * never good clients, and one credential per request. A real server on 127.0.0.1: the test
 * process is its peer, and loopback is a trusted proxy by default, so the test plays the proxy.
 */

describe('the source-address rule', () => {
  const loopback = proxyTrust(['127.0.0.1', '::1']);
  const cases: [string, string | undefined, string | null][] = [
    // peer, X-Forwarded-For, the address taken
    ['203.0.113.5', '198.51.100.1', '203.0.113.5'], // an untrusted peer's header is never read
    ['127.0.0.1', undefined, '127.0.0.1'],
    ['127.0.0.1', '198.51.100.1', '198.51.100.1'],
    ['127.0.0.1', 'spoofed, 198.51.100.1', '198.51.100.1'], // an appending proxy: the right-most hop is the one it saw
    ['127.0.0.1', '10.9.9.9, 198.51.100.1', '198.51.100.1'],
    ['127.0.0.1', '198.51.100.1, 127.0.0.1', '198.51.100.1'], // trusted hops are skipped
    ['127.0.0.1', '198.51.100.1, not-an-ip', '127.0.0.1'], // a hop that is not an IP: the peer
    ['127.0.0.1', '198.51.100.1:4321', '127.0.0.1'],
    ['127.0.0.1', '', '127.0.0.1'],
    ['127.0.0.1', '127.0.0.1', '127.0.0.1'], // all hops trusted: the left-most
    ['::ffff:127.0.0.1', '2001:db8::7', '2001:db8::7'], // an IPv4 peer on a dual-stack socket
    ['::ffff:203.0.113.5', '198.51.100.1', '203.0.113.5'],
  ];
  it.each(cases)('peer %s, X-Forwarded-For %j → %s', (peer, xff, expected) => {
    expect(clientAddress(peer, xff, loopback)).toBe(expected);
  });

  it('trusts CIDR blocks (a Kubernetes pod network) and nothing with an empty list', () => {
    const pods = proxyTrust(['10.0.0.0/8', 'fd00::/8']);
    expect(clientAddress('10.1.2.3', '198.51.100.1, 10.4.4.4', pods)).toBe('198.51.100.1');
    expect(clientAddress('fd00::1', '198.51.100.2', pods)).toBe('198.51.100.2');
    expect(clientAddress('11.1.2.3', '198.51.100.1', pods)).toBe('11.1.2.3');
    expect(clientAddress('127.0.0.1', '198.51.100.1', proxyTrust([]))).toBe('127.0.0.1');
  });

  it('refuses a trustedProxies entry that is neither an address nor a block, naming it', () => {
    expect(() => loadConfig({ env: {}, overrides: { verify: { trustedProxies: ['127.0.0.1', 'nginx.local'] } } })).toThrow(/verify\.trustedProxies\[1\]: "nginx\.local" is not an IP address or CIDR block/);
    expect(() => loadConfig({ env: {}, overrides: { verify: { trustedProxies: ['10.0.0.0/33'] } } })).toThrow(/verify\.trustedProxies\[0\]: "10\.0\.0\.0\/33" has an invalid prefix length/);
    expect(loadConfig({ env: {} }).verify.trustedProxies).toEqual(['127.0.0.1', '::1']);
  });
});

/** Sends one raw HTTP/1.1 request (fetch cannot send a header twice) and returns the status line's code and the headers. */
function rawRequest(base: string, path: string, headerLines: string[]): Promise<{ status: number; head: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(Number(url.port), url.hostname, () => {
      socket.write([`GET ${path} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close', ...headerLines, '', ''].join('\r\n'));
    });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (text += c));
    socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), head: text.split('\r\n\r\n')[0]!.toLowerCase() }));
    socket.on('error', reject);
  });
}

describe('a real server behind a trusted, appending proxy', () => {
  const clock = new ManualClock(Date.now());
  let s: TestServer;
  let good: { token: string; id: string };
  beforeAll(async () => {
    s = await startTestServer({ clock, config: { verify: { failureLimit: 5, failureWindow: '2m', cacheTtl: '10m' } } });
    good = await mintFor(s, 'bot-edge', ['metrics.read'], { expiresIn: '1h' });
  });
  afterAll(async () => s?.close());

  const auth = (token: string | undefined, xff?: string, headers: Record<string, string> = {}) =>
    fetch(`${s.url}/auth?scope=metrics.read`, {
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(xff !== undefined ? { 'x-forwarded-for': xff } : {}), ...headers },
    });

  it('limits a flood by the real client, however the client rotates the left-most hop', async () => {
    const attacker = '203.0.113.77';
    // The valid token is used once from the attacker's address before the flood: it is cached.
    expect((await auth(good.token, `1.1.1.1, ${attacker}`)).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await auth(mintToken().plaintext, `10.0.${i}.1, ${attacker}`)).status).toBe(401);
    const limited = await auth(mintToken().plaintext, `10.0.99.1, ${attacker}`);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('x-error-status')).toBe('429');
    expect(limited.headers.get('retry-after')).toBe('120'); // verify.failureWindow: 2m, no time has passed
    expect(limited.headers.get('www-authenticate')).toContain('error="invalid_request"');
    // Another client behind the same proxy is not affected.
    expect((await auth(mintToken().plaintext, '10.0.99.1, 203.0.113.78')).status).toBe(401);
  });

  it('still answers the valid token from the flooded address with 200, on /auth and on the API', async () => {
    const attacker = '203.0.113.77';
    expect((await auth(good.token, `9.9.9.9, ${attacker}`)).status).toBe(200);
    // Its cache entry dropped (a grant change, or the TTL): a token this server found valid before
    // may still ask the store from there, and is answered 200; a never-seen token is not.
    s.tw.ctx.verifier.invalidateActor('*');
    expect(s.tw.ctx.verifier.cacheStats.positive).toBe(0);
    expect((await auth(good.token, `9.9.9.8, ${attacker}`)).status).toBe(200);
    const { token: unseen } = await mintFor(s, 'bot-edge', ['metrics.read']);
    expect((await auth(unseen, attacker)).status).toBe(429);
    expect((await auth(unseen, '203.0.113.79')).status).toBe(200);
    // The admin token is cached (the test just used it), so the API lets it in from there too.
    expect((await s.api('GET', '/api/v1/tokens')).status).toBe(200);
    const api = await s.api('GET', '/api/v1/whoami', undefined, undefined, { 'x-forwarded-for': attacker });
    expect(api.status).toBe(200);
    // A bad token on the API from there: 429 problem JSON with the window's Retry-After.
    const bad = await s.api('GET', '/api/v1/whoami', undefined, mintToken().plaintext, { 'x-forwarded-for': attacker });
    expect(bad.status).toBe(429);
    expect(bad.body).toMatchObject({ status: 429, type: expect.stringContaining('rate-limited') });
    expect(bad.headers.get('retry-after')).toBe('120');
  });

  it('refuses bad tokens from a limited address without reading the store, Retry-After counting down the window', async () => {
    const attacker = '203.0.113.77';
    const reads = vi.spyOn(s.tw.ctx.store.lookup, 'token');
    try {
      clock.advance(30_000);
      for (let i = 0; i < 40; i++) {
        const r = await auth(mintToken().plaintext, `172.16.${i}.9, ${attacker}`);
        expect(r.status).toBe(429);
        expect(r.headers.get('retry-after')).toBe('90');
      }
      // No token, garbage: 429 too, still without the store.
      expect((await auth('twd_garbage', attacker)).status).toBe(429);
      expect(reads).not.toHaveBeenCalled();
      // The same kind of token from an address that is not limited does reach the store.
      expect((await auth(mintToken().plaintext, '203.0.113.90')).status).toBe(401);
      expect(reads).toHaveBeenCalledTimes(1);
    } finally {
      reads.mockRestore();
    }
    // When the window ends the address is free again.
    clock.advance(90_000);
    expect((await auth(mintToken().plaintext, attacker)).status).toBe(401);
  });

  it('records the rule’s address as last use and in the audit log', async () => {
    const created = await s.api('POST', '/api/v1/tokens', { actor: 'bot-edge', name: 'addr', scopes: ['metrics.read'], expiresIn: '1h' }, undefined, {
      'x-forwarded-for': '192.0.2.1, 198.51.100.23',
    });
    expect(created.status).toBe(201);
    const audit = await s.api('GET', `/api/v1/audit?target=${created.body.id}`);
    expect(audit.body.items[0]).toMatchObject({ action: expect.stringContaining('token'), sourceIp: '198.51.100.23' });

    expect((await auth(created.body.token, '192.0.2.2, 198.51.100.24')).status).toBe(200);
    await s.tw.ctx.verifier.lastUse.flush();
    expect((await s.api('GET', `/api/v1/tokens/${created.body.id}`)).body.lastUsed).toMatchObject({ ip: '198.51.100.24' });

    // A hop that is not an IP address: the answer is unchanged (never a 4xx), the peer is recorded.
    clock.advance(1000); // a later use (last use only moves forward)
    const r = await auth(created.body.token, '198.51.100.25, not-an-ip');
    expect(r.status).toBe(200);
    await s.tw.ctx.verifier.lastUse.flush();
    expect((await s.api('GET', `/api/v1/tokens/${created.body.id}`)).body.lastUsed).toMatchObject({ ip: '127.0.0.1' });
  });

  it('refuses two Authorization headers, or two tokens in one, with 400 invalid_request on /auth and the API', async () => {
    const other = mintToken().plaintext;
    for (const path of ['/auth?scope=metrics.read', '/api/v1/whoami']) {
      // valid first, garbage second, and the reverse: neither wins
      for (const lines of [
        [`Authorization: Bearer ${good.token}`, `Authorization: Bearer ${other}`],
        [`authorization: Bearer ${other}`, `Authorization: Bearer ${good.token}`],
        [`Authorization: Bearer ${good.token}, Bearer ${other}`],
        [`Authorization: Bearer ${good.token} ${other}`],
      ]) {
        const r = await rawRequest(s.url, path, lines);
        expect([path, lines.length, r.status]).toEqual([path, lines.length, 400]);
        expect(r.head).toContain('www-authenticate: bearer realm="tokenwarden", error="invalid_request"');
      }
    }
    // One credential still works, by either path.
    expect((await rawRequest(s.url, '/auth?scope=metrics.read', [`Authorization: Bearer ${good.token}`])).status).toBe(200);
    expect((await rawRequest(s.url, '/api/v1/whoami', [`Authorization: Bearer ${s.adminToken}`])).status).toBe(200);
  });
});

describe('the auth listener thread follows the same rules', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ config: { authListen: { port: 0 }, verify: { failureLimit: 3, failureWindow: '45s' } } });
  });
  afterAll(async () => s?.close());

  it('refuses two credentials with 400, and limits by the right-most untrusted hop with the window’s Retry-After', async () => {
    const authUrl = s.tw.authUrl!;
    const { token } = await mintFor(s, 'bot-edge', ['metrics.read']);
    const dup = await rawRequest(authUrl, '/auth', [`Authorization: Bearer ${token}`, `Authorization: Bearer ${mintToken().plaintext}`]);
    expect(dup.status).toBe(400);
    expect((await rawRequest(authUrl, '/auth', [`Authorization: Bearer ${token}`])).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      expect((await rawRequest(authUrl, '/auth', [`Authorization: Bearer ${mintToken().plaintext}`, `X-Forwarded-For: 10.1.1.${i}, 198.51.100.50`])).status).toBe(401);
    }
    const limited = await rawRequest(authUrl, '/auth', [`Authorization: Bearer ${mintToken().plaintext}`, 'X-Forwarded-For: 10.1.1.200, 198.51.100.50']);
    expect(limited.status).toBe(429);
    const retryAfter = Number(/retry-after: (\d+)/.exec(limited.head)?.[1]);
    expect(retryAfter).toBeGreaterThan(30);
    expect(retryAfter).toBeLessThanOrEqual(45);
  });
});

describe('the gate follows the same rules', () => {
  let s: TestServer;
  let upstreamHits = 0;
  const upstream = createServer((_req, res) => {
    upstreamHits++;
    res.end('node_up 1\n');
  });
  let gate: Awaited<ReturnType<typeof createGate>>;
  let gateUrl: string;
  beforeAll(async () => {
    s = await startTestServer();
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    gate = createGate({
      upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      check: remoteCheck({ server: s.url, requirement: { scopes: ['metrics.read'], satisfy: 'all' }, cacheTtlMs: 5000, clock: systemClock }),
      logger: createLogger({ level: 'silent' }),
    });
    gateUrl = await listenGate(gate, '127.0.0.1', 0);
  });
  afterAll(async () => {
    await gate?.close();
    upstream.close();
    await s?.close();
  });

  it('refuses two Authorization headers with 400 without reaching the upstream; one passes', async () => {
    const { token } = await mintFor(s, 'bot-edge', ['metrics.read']);
    const dup = await rawRequest(gateUrl, '/metrics', [`Authorization: Bearer ${token}`, `Authorization: Bearer ${mintToken().plaintext}`]);
    expect(dup.status).toBe(400);
    expect(dup.head).toContain('error="invalid_request"');
    expect(upstreamHits).toBe(0);
    expect((await rawRequest(gateUrl, '/metrics', [`Authorization: Bearer ${token}`])).status).toBe(200);
    expect(upstreamHits).toBe(1);
  });
});
