import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../src/token/format.js';
import { type PostgresServer, startPostgres } from './support/postgres.js';
import { waitFor } from './support/wait.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

/** Issue 13 point 8: a store that cannot be reached is 503 problem JSON with Retry-After on every API route, as on /auth. */
let pgServer: PostgresServer;
let s: TestServer;
beforeAll(async () => {
  pgServer = await startPostgres({ name: 'unavailable' });
  s = await startTestServer({ storeUrl: await pgServer.createDatabase('unavailable'), config: { verify: { cacheTtl: '10m' } } });
}, 60_000);
afterAll(async () => {
  await s?.close().catch(() => undefined);
  await pgServer?.destroy();
});

describe('PostgreSQL stopped mid-run', () => {
  it('answers 503 problem JSON with Retry-After on the API, and 200 again once it is back', async () => {
    const { token } = await mintFor(s, 'bot-unavailable', ['metrics.read']);
    expect((await fetch(`${s.url}/auth`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await s.api('GET', '/api/v1/tokens')).status).toBe(200); // the admin token is now cached
    await pgServer.stop();
    try {
      for (const [method, path, body] of [
        ['GET', '/api/v1/tokens', undefined],
        ['GET', '/api/v1/actors', undefined],
        ['GET', '/api/v1/audit', undefined],
        ['POST', '/api/v1/tokens', { actor: 'bot-unavailable', name: 'during-outage', scopes: ['metrics.read'] }],
      ] as const) {
        const r = await s.api(method, path, body);
        expect([method, path, r.status]).toEqual([method, path, 503]);
        expect(r.headers.get('content-type')).toContain('application/problem+json');
        expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(r.body).toMatchObject({ status: 503, type: expect.stringContaining('unavailable'), detail: expect.stringContaining('store') });
        expect(JSON.stringify(r.body)).not.toContain(s.adminToken);
      }
      // A token that is not cached cannot be checked either: 503 on the API (its authentication) and on /auth.
      const uncached = mintToken().plaintext;
      const api = await s.api('GET', '/api/v1/whoami', undefined, uncached);
      expect(api.status).toBe(503);
      expect(api.headers.get('retry-after')).toMatch(/^\d+$/);
      const auth = await fetch(`${s.url}/auth`, { headers: { authorization: `Bearer ${uncached}` } });
      expect(auth.status).toBe(503);
      expect(auth.headers.get('retry-after')).toMatch(/^\d+$/);
    } finally {
      await pgServer.start();
    }
    await waitFor(async () => (await s.api('GET', '/api/v1/tokens')).status === 200, 'the API to answer 200 after PostgreSQL is back');
    expect((await s.api('GET', '/api/v1/actors')).status).toBe(200);
    expect((await fetch(`${s.url}/auth`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  }, 60_000);
});

