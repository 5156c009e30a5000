import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Nginx, renderShipped, startNginx } from './support/nginx.js';
import { LOG_DIR, tempDir } from './support/output.js';
import { freePort } from './support/ports.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

const FAILURE_LIMIT = 5;
const CACHE_TTL_MS = 2000;

/** The same cases against /auth on the main port and on the authListen port (a thread of its own). */
for (const [label, viaAuthListen] of [['main', false], ['authListen', true]] as const) {
  let tw: TestServer;
  let nginx: Nginx;
  let base: { port: number };
  let metricsToken: string;
  let otherToken: string;

  /** A GET through nginx; `from` picks the client's loopback address, so rate-limit cases do not block the others. */
  function get(path: string, headers: Record<string, string> = {}, from = '127.0.0.1'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: base.port, path, headers, localAddress: from, agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

  beforeAll(async () => {
    tw = await startTestServer({
      config: { verify: { failureLimit: FAILURE_LIMIT, cacheTtl: `${CACHE_TTL_MS}ms` }, ...(viaAuthListen ? { authListen: { port: 0 } } : {}) },
    });
    metricsToken = (await mintFor(tw, 'bot-prometheus', ['metrics.read'])).token;
    otherToken = (await mintFor(tw, 'bot-other', ['token.introspect'])).token;
    const dir = tempDir(`nginx-${label}`);
    const root = join(dir, 'www');
    mkdirSync(root);
    writeFileSync(join(root, 'metrics'), 'node_up 1\n');
    base = { port: await freePort() };
    const site = renderShipped('deploy/nginx/tokenwarden-auth.conf', {
      TOKENWARDEN: new URL(viaAuthListen ? tw.tw.authUrl! : tw.url).host,
      LISTEN: `127.0.0.1:${base.port}`,
      SCOPE: 'metrics.read',
      ROOT: root,
    });
    nginx = await startNginx(
      dir,
      site,
      { errorLog: join(LOG_DIR, `nginx-error-${process.pid}-${label}.log`), accessLog: join(LOG_DIR, `nginx-access-${process.pid}-${label}.log`) },
      [base.port],
    );
  });

  afterAll(async () => {
    await nginx?.stop();
    await tw?.close();
  });

  describe(`nginx auth_request with the shipped config, to ${label}`, () => {
    it('serves the protected file to a valid token and names the identity', async () => {
      const res = await get('/metrics', bearer(metricsToken));
      expect(res.status).toBe(200);
      expect(res.body).toBe('node_up 1\n');
      expect(res.headers['x-tokenwarden-actor']).toBe('bot-prometheus');
    });

    it('answers 401 with the Bearer challenge for no token and for a bad one', async () => {
      const none = await get('/metrics');
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer realm="tokenwarden"');
      const bad = await get('/metrics', bearer('twd_nonsense'));
      expect(bad.status).toBe(401);
      expect(bad.headers['www-authenticate']).toContain('error="invalid_token"');
    });

    it('answers 403 insufficient_scope for a valid token without the scope', async () => {
      const res = await get('/metrics', bearer(otherToken));
      expect(res.status).toBe(403);
      expect(res.body).not.toContain('node_up');
    });

    it('answers 401 for a revoked token within the cache bound', async () => {
      const { token, id } = await mintFor(tw, 'bot-prometheus', ['metrics.read']);
      expect((await get('/metrics', bearer(token))).status).toBe(200);
      const revokedAt = Date.now();
      expect((await tw.api('POST', `/api/v1/tokens/${id}/revoke`, {})).status).toBe(200);
      let status = 200;
      while (status === 200 && Date.now() - revokedAt < CACHE_TTL_MS + 1000) {
        status = (await get('/metrics', bearer(token))).status;
        if (status === 200) await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe(401);
      expect(Date.now() - revokedAt).toBeLessThan(CACHE_TTL_MS);
    });

    it('turns tokenwarden 429 (too many failed attempts from one source) into a 429 for that client only', async () => {
      for (let i = 0; i < FAILURE_LIMIT; i++) expect((await get('/metrics', bearer(`twd_bad${i}`), '127.0.0.2')).status).toBe(401);
      const limited = await get('/metrics', bearer('twd_bad_again'), '127.0.0.2');
      expect(limited.status).toBe(429);
      // the seconds left in verify.failureWindow (1m by default)
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(limited.body).toContain('too many failed attempts');
      // the limit throttles failures, never good clients: the valid token from that source still passes
      expect((await get('/metrics', bearer(metricsToken), '127.0.0.2')).status).toBe(200);
      // another source is not affected
      expect((await get('/metrics', bearer(metricsToken), '127.0.0.1')).status).toBe(200);
      // and nginx logged why it got an unexpected status, so the mapping is what turned it into 429
      expect(readFileSync(join(LOG_DIR, `nginx-error-${process.pid}-${label}.log`), 'utf8')).toContain('auth request unexpected status: 429');
    });
  });
}
