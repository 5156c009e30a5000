import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/wait.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

/** Two tokenwarden servers on one SQLite file: the situation of two replicas, or a server and a gate. */
let a: TestServer;
let b: TestServer;
beforeAll(async () => {
  // A long cache on B: only the revocation watch can make it refuse in time.
  a = await startTestServer({ config: { verify: { failureLimit: 1000, cacheTtl: '10m' } } });
  // B answers /auth on its main thread (listen.front: inline), whose verifier's cache these tests look into;
  // the same watch reaching the front threads is in front.test.ts.
  b = await startTestServer({
    dbPath: a.dbPath,
    adminToken: a.adminToken,
    config: { listen: { host: '127.0.0.1', port: 0, front: 'inline' }, verify: { failureLimit: 1000, cacheTtl: '10m' } },
  });
});
afterAll(async () => {
  await b?.close();
  await a?.close();
});

const auth = (server: TestServer, token: string) =>
  fetch(`${server.url}/auth?scope=metrics.read`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

describe('revocation and grant changes across processes sharing a store', () => {
  it('a revoke on one server is refused by the other within 1 s, despite its cache', async () => {
    const { token, id } = await mintFor(a, 'bot-replicated', ['metrics.read']);
    expect(await auth(b, token)).toBe(200); // B now holds it in its positive cache
    expect(b.tw.ctx.verifier.cacheStats.positive).toBeGreaterThan(0);
    const t0 = Date.now();
    expect((await a.api('POST', `/api/v1/tokens/${id}/revoke`, {})).status).toBe(200);
    expect(await auth(a, token)).toBe(401); // the revoking replica: at once
    let status = 200;
    while (status === 200 && Date.now() - t0 < 3000) {
      status = await auth(b, token);
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    const elapsed = Date.now() - t0;
    expect(status).toBe(401);
    expect(elapsed).toBeLessThan(1000);
  });

  it('a role taken away on one server is enforced by the other within 1 s, despite its cache; given back too', async () => {
    expect((await a.api('POST', '/api/v1/actors', { name: 'bot-regranted', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
    const { token } = await mintFor(a, 'bot-regranted', ['metrics.read']);
    expect(await auth(b, token)).toBe(200); // cached on B for 10 minutes
    const within = async (status: number) => {
      const t0 = Date.now();
      await waitFor(async () => (await auth(b, token)) === status, `the other server to answer ${status}`, 3000, 20);
      return Date.now() - t0;
    };
    expect((await a.api('PATCH', '/api/v1/actors/bot-regranted', { roles: [] })).status).toBe(200);
    expect(await auth(a, token)).toBe(403); // the server that made the change: at once
    const taken = await within(403);
    expect((await a.api('PATCH', '/api/v1/actors/bot-regranted', { roles: ['metrics-read'] })).status).toBe(200);
    const given = await within(200);
    expect(Math.max(taken, given)).toBeLessThan(1000);
  });

  it('the other server keeps answering from its cache for tokens that were not revoked', async () => {
    const { token } = await mintFor(a, 'bot-replicated', ['metrics.read']);
    expect(await auth(b, token)).toBe(200);
    expect(b.tw.ctx.verifier.verifyCached(token, { ip: '127.0.0.1', userAgent: null })).toMatchObject({ ok: true });
  });
});
