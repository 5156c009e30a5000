import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_SCOPES } from '../src/authority/catalogue.js';
import { ROUTE_PERMISSIONS } from '../src/authority/permissions.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

/**
 * The permissions table is what the server enforces and what the OpenAPI document publishes:
 * every operation declares its scopes, and every route refuses a token lacking them with 403.
 */
let s: TestServer;
const ALL = Object.keys(BUILTIN_SCOPES);
const rows = Object.entries(ROUTE_PERMISSIONS).map(([key, access]) => {
  const [method, path] = key.split(' ') as [string, string];
  return { key, method, path, access };
});

beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => s?.close());

const concrete = (path: string) => path.replace(':id', 'AAAAAAAAAAAA').replace(':name', 'nobody');

describe('the permissions table', () => {
  it('the OpenAPI document declares the scopes of every operation, exactly as the table', async () => {
    const doc = (await s.api('GET', '/api/v1/openapi.json')).body as { paths: Record<string, Record<string, Record<string, any>>> };
    const published = new Map<string, unknown>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (method === 'head') continue;
        const key = `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`;
        published.set(key, { scopes: op['x-required-scopes']?.scopes, satisfy: op['x-required-scopes']?.satisfy, security: op.security });
      }
    }
    const api = rows.filter((r) => r.path.startsWith('/api/v1/'));
    expect([...published.keys()].sort()).toEqual(api.map((r) => r.key).sort());
    for (const r of api) {
      expect(published.get(r.key), r.key).toEqual({ scopes: [...r.access.scopes], satisfy: r.access.satisfy, security: [{ bearer: [...r.access.scopes] }] });
    }
  });

  it.each(rows.filter((r) => r.access.scopes.length))('$key: a token lacking its scopes gets 403 naming them, before the body is read', async (r) => {
    const lacking = ALL.filter((sc) => !r.access.scopes.includes(sc));
    const { token } = await mintFor(s, `bot-lacks-${r.access.scopes.join('-').replace(/[^a-z]/g, '')}`, lacking);
    const res = await s.api(r.method, concrete(r.path), r.method === 'GET' || r.method === 'DELETE' ? undefined : {}, token);
    expect(res.status, JSON.stringify(res.body)).toBe(403);
    for (const sc of r.access.scopes) expect(res.body.detail).toContain(`"${sc}"`);
    expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    // Holding them is enough to get past the table (what happens next is the route's own business).
    const holding = r.access.satisfy === 'any' ? [r.access.scopes[0]!] : [...r.access.scopes];
    const { token: enough } = await mintFor(s, `bot-holds-${holding.join('-').replace(/[^a-z]/g, '')}`, holding);
    const ok = await s.api(r.method, concrete(r.path), r.method === 'GET' || r.method === 'DELETE' ? undefined : {}, enough);
    expect(ok.status, `${r.key} ${JSON.stringify(ok.body)}`).not.toBe(403);
    expect(ok.status).not.toBe(401);
  });

  it('every change needs a scope, but for the token routes whose rule is the issuance policy and ownership', () => {
    const open = rows.filter((r) => r.method !== 'GET' && !r.access.scopes.length).map((r) => r.key);
    expect(open.sort()).toEqual(['DELETE /api/v1/tokens/:id', 'POST /api/v1/tokens', 'POST /api/v1/tokens/:id/replace', 'POST /api/v1/tokens/:id/revoke']);
    // Each permission tokenwarden defines guards something.
    const used = new Set(rows.flatMap((r) => r.access.scopes));
    for (const sc of ALL.filter((x) => x !== 'token.issue.service')) expect(used.has(sc), sc).toBe(true);
  });

  it('routes open to any valid token still need one: 401 without', async () => {
    for (const r of rows) {
      const res = await s.api(r.method, concrete(r.path), undefined, null);
      expect(res.status, r.key).toBe(401);
    }
  });

  it('a route without a row in the table refuses to start', async () => {
    await expect(
      startTestServer({ plugins: [(app) => void app.get('/api/v1/unlisted', async () => ({}))] }),
    ).rejects.toThrow(/GET \/api\/v1\/unlisted has no row in the permissions table/);
  });
});
