import { createWriteStream, readFileSync } from 'node:fs';
import { Agent as HttpAgent, type IncomingHttpHeaders, type Server, createServer, get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { loadConfig } from '../src/config/server-config.js';
import type { GateCheck } from '../src/forward-auth/gate/check.js';
import { localCheck } from '../src/forward-auth/gate/local-check.js';
import { type Gate, createGate, listenGate } from '../src/forward-auth/gate/proxy.js';
import { remoteCheck } from '../src/forward-auth/gate/remote-check.js';
import { createLogger } from '../src/log.js';
import { LOG_DIR, rememberSecret } from './support/output.js';
import { freePort } from './support/ports.js';
import { type ServeProcess, spawnGate } from './support/process.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

/** An exporter-like upstream: /metrics in Prometheus text format, and it remembers what it was sent. */
let exporter: Server;
let exporterUrl: string;
let seen: IncomingHttpHeaders[] = [];
let tw: TestServer;
let metricsToken: string;
let otherToken: string;
const logFile = join(LOG_DIR, `gate-${process.pid}.log`);
const logStream = createWriteStream(logFile);
const logger = createLogger({ level: 'info', stream: logStream, name: 'tokenwarden-gate' });
const gates: Gate[] = [];

beforeAll(async () => {
  exporter = createServer((req, res) => {
    seen.push(req.headers);
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'x-exporter': 'node' });
        res.end('# HELP node_up up\n# TYPE node_up gauge\nnode_up 1\n');
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`${req.method} ${req.url} ${body}`);
      }
    });
  });
  await new Promise<void>((r) => exporter.listen(0, '127.0.0.1', r));
  exporterUrl = `http://127.0.0.1:${(exporter.address() as AddressInfo).port}`;
  tw = await startTestServer({ config: { verify: { failureLimit: 1000 } } });
  metricsToken = (await mintFor(tw, 'bot-prometheus', ['metrics.read'])).token;
  otherToken = (await mintFor(tw, 'bot-writer', ['token.introspect'])).token;
});

afterAll(async () => {
  for (const g of gates) await g.close();
  await tw?.close();
  await new Promise((r) => exporter?.close(r));
  await new Promise((r) => logStream.end(r));
});

async function startGate(check: GateCheck, upstream = exporterUrl): Promise<string> {
  const gate = createGate({ upstream, check, logger, header: 'x-api-key' });
  gates.push(gate);
  return listenGate(gate, '127.0.0.1', 0);
}

const get = (url: string, token?: string, headers: Record<string, string> = {}) =>
  fetch(url, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });

function behavesAsAGate(mode: 'remote' | 'local', make: () => Promise<GateCheck>) {
  describe(`gate (${mode} check)`, () => {
    let url: string;
    beforeAll(async () => {
      url = await startGate(await make());
    });

    it('passes an allowed request through, body and headers intact, without the credential', async () => {
      seen = [];
      const res = await get(`${url}/metrics`, metricsToken, { 'x-tokenwarden-actor': 'spoofed', 'x-api-key': 'not-for-upstream' });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-exporter')).toBe('node');
      expect(await res.text()).toContain('node_up 1');
      expect(seen).toHaveLength(1);
      expect(seen[0]!.authorization).toBeUndefined();
      expect(seen[0]!['x-api-key']).toBeUndefined();
      expect(seen[0]!['x-tokenwarden-actor']).toBe('bot-prometheus');
      expect(seen[0]!['x-forwarded-for']).toBe('127.0.0.1');
      // a second request is answered from the cache and streams a request body through
      const post = await fetch(`${url}/push?x=1`, { method: 'POST', body: 'a=1', headers: { authorization: `Bearer ${metricsToken}` } });
      expect(await post.text()).toBe('POST /push?x=1 a=1');
    });

    it('answers 401 for no token and for an invalid one, 403 for a missing scope, without reaching the upstream', async () => {
      seen = [];
      const none = await get(`${url}/metrics`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="tokenwarden"');
      const bad = await get(`${url}/metrics`, 'twd_garbage');
      expect(bad.status).toBe(401);
      expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"');
      const forged = `${metricsToken.slice(0, 20)}${metricsToken.slice(20).replace(/[0-9A-Za-z]/, (c) => (c === 'a' ? 'b' : 'a'))}`;
      expect((await get(`${url}/metrics`, forged)).status).toBe(401);
      const wrong = await get(`${url}/metrics`, otherToken);
      expect(wrong.status).toBe(403);
      expect(wrong.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect(wrong.headers.get('www-authenticate')).toContain('scope="metrics.read"');
      // the token may also come in the configured header
      expect((await get(`${url}/metrics`, undefined, { 'x-api-key': metricsToken })).status).toBe(200);
      expect(seen).toHaveLength(1);
    });

    it('answers 502 with a problem body when the upstream is down', async () => {
      const down = await startGate(await make(), `http://127.0.0.1:${await freePort()}`);
      const res = await get(`${down}/metrics?access_token=${metricsToken}`, metricsToken);
      expect(res.status).toBe(502);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      const body = (await res.json()) as { detail: string };
      expect(body).toMatchObject({ status: 502, type: expect.stringContaining('bad-gateway'), instance: '/metrics' });
      expect(body.detail).toContain('ECONNREFUSED');
    });
  });
}

const clock = new ManualClock(Date.now());
behavesAsAGate('remote', async () =>
  remoteCheck({ server: tw.url, requirement: { scopes: ['metrics.read'], satisfy: 'all' }, cacheTtlMs: 5000, clock }),
);
behavesAsAGate('local', async () =>
  localCheck(loadConfig({ env: {}, overrides: { store: { url: tw.dbPath } } }), { scopes: ['metrics.read'], satisfy: 'all' }, clock, logger),
);

describe('gate caching and revocation', () => {
  it('remote: a revoked token is refused once the short positive cache has lapsed, and never later than its TTL', async () => {
    const c = new ManualClock(Date.now());
    const url = await startGate(remoteCheck({ server: tw.url, requirement: { scopes: ['metrics.read'], satisfy: 'all' }, cacheTtlMs: 5000, clock: c }));
    const { token, id } = await mintFor(tw, 'bot-prometheus', ['metrics.read']);
    expect((await get(`${url}/metrics`, token)).status).toBe(200);
    expect((await tw.api('POST', `/api/v1/tokens/${id}/revoke`, {})).status).toBe(200);
    c.advance(4000);
    expect((await get(`${url}/metrics`, token)).status).toBe(200); // still inside the 5 s bound
    c.advance(1001);
    expect((await get(`${url}/metrics`, token)).status).toBe(401);
  });

  it('answers 503 when the tokenwarden server cannot be reached', async () => {
    const url = await startGate(remoteCheck({ server: `http://127.0.0.1:${await freePort()}`, requirement: { scopes: [], satisfy: 'all' }, cacheTtlMs: 0, clock }));
    const res = await get(`${url}/metrics`, metricsToken);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { detail: string }).detail).toContain('cannot be verified');
  });

  it('never logs the secret it saw in a header or the query', async () => {
    await new Promise<void>((r) => logStream.write('', () => r()));
    const text = readFileSync(logFile, 'utf8');
    expect(text).toContain('upstream request failed');
    expect(text).not.toContain(metricsToken);
    expect(text).not.toContain(metricsToken.slice(17, 60));
  });
});

describe('tokenwarden gate (the command)', () => {
  let gateProcess: ServeProcess | undefined;
  afterAll(async () => {
    await gateProcess?.stop();
  });

  it('starts from flags, prints where it listens, and gates the exporter', async () => {
    gateProcess = await spawnGate(['--upstream', exporterUrl, '--scope', 'metrics.read', '--listen', `127.0.0.1:${await freePort()}`, '--server', tw.url]);
    const url = gateProcess.url;
    expect(readFileSync(gateProcess.stdoutFile, 'utf8')).toContain(`forwarding to ${exporterUrl} (needs metrics.read; verifying with server ${tw.url})`);
    expect((await get(`${url}/metrics`, metricsToken)).status).toBe(200);
    expect((await get(`${url}/metrics?access_token=${rememberSecret(metricsToken)}`)).status).toBe(401);
  });
});

describe('keep-alive between the gate and the server', () => {
  const rawGet = (url: string, agent: HttpAgent) =>
    new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const req = httpGet(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      });
      req.on('error', reject);
    });

  it('the real listening servers (main port, authListen) run the configured keep-alive timeout, 72 s by default', async () => {
    const agent = new HttpAgent({ keepAlive: true });
    const configured = await startTestServer({ config: { listen: { host: '127.0.0.1', port: 0, keepAliveTimeout: '2500ms' }, authListen: { host: '127.0.0.1', port: 0 } } });
    try {
      expect(configured.tw.app.server.keepAliveTimeout).toBe(2500);
      expect(configured.tw.app.server.headersTimeout).toBeGreaterThan(2500);
      expect((await rawGet(`${configured.url}/healthz`, agent))['keep-alive']).toBe('timeout=2');
      expect((await rawGet(`${configured.tw.authUrl}/auth`, agent))['keep-alive']).toBe('timeout=2');
    } finally {
      await configured.close();
    }
    expect(tw.tw.app.server.keepAliveTimeout).toBe(72_000);
    expect(tw.tw.app.server.headersTimeout).toBeGreaterThan(72_000);
    expect((await rawGet(`${tw.url}/healthz`, agent))['keep-alive']).toBe('timeout=72');
    agent.destroy();
  });

  it('refuses a keep-alive timeout that is not a duration, naming the field', () => {
    expect(() => loadConfig({ env: {}, overrides: { listen: { keepAliveTimeout: 'soon' } } })).toThrow(/listen\.keepAliveTimeout: "soon" is not valid; expected a duration/);
  });

  it('answers every check across pauses around a short server keep-alive timeout', async () => {
    const short = await startTestServer({ config: { listen: { host: '127.0.0.1', port: 0, keepAliveTimeout: '2s' }, verify: { failureLimit: 1000 } } });
    try {
      const { token } = await mintFor(short, 'bot-prometheus', ['metrics.read']);
      const url = await startGate(remoteCheck({ server: short.url, requirement: { scopes: ['metrics.read'], satisfy: 'all' }, cacheTtlMs: 0, clock }));
      const statuses: number[] = [];
      for (const pause of [0, 990, 1000, 1010, 1990, 2000, 2010, 2990, 3000]) {
        await new Promise((r) => setTimeout(r, pause));
        statuses.push((await get(`${url}/metrics`, token)).status);
      }
      expect(statuses).toEqual(statuses.map(() => 200));
    } finally {
      await short.close();
    }
  }, 30_000);

  it('asks once more when the server resets a reused connection, and answers 503 once the server is really down', async () => {
    // A server that closes every kept-alive connection exactly when it is reused: the race of an idle timeout.
    let resets = 0;
    const perSocket = new WeakMap<object, number>();
    const flaky = createServer((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (n > 1) {
        resets++;
        return req.socket.destroy();
      }
      res.writeHead(200, { 'x-tokenwarden-actor': 'bot-prometheus', 'x-tokenwarden-expires-at': String(Math.floor(Date.now() / 1000) + 3600) });
      res.end();
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    const server = `http://127.0.0.1:${(flaky.address() as AddressInfo).port}`;
    const url = await startGate(remoteCheck({ server, requirement: { scopes: ['metrics.read'], satisfy: 'all' }, cacheTtlMs: 0, clock }));
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await get(`${url}/metrics`, metricsToken)).status);
    expect(statuses).toEqual(statuses.map(() => 200));
    expect(resets).toBeGreaterThanOrEqual(9); // every check that reused a kept-alive connection met a reset, and was asked again

    await new Promise<void>((r) => {
      flaky.close(() => r());
      flaky.closeAllConnections();
    });
    const down = await get(`${url}/metrics`, metricsToken);
    expect(down.status).toBe(503);
    expect(((await down.json()) as { detail: string }).detail).toContain('cannot be verified');
  });
});
