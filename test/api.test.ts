import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ config: { verify: { failureLimit: 1000 } } });
});
afterAll(async () => s.close());

function expectProblem(res: { status: number; body: any; headers: Headers }, status: number, field?: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  expect(res.body).toMatchObject({ status, type: expect.stringContaining('/problems/'), title: expect.any(String), detail: expect.any(String) });
  if (field) expect(res.body.field).toBe(field);
}

describe('REST API', () => {
  it('needs a token: 401 problem with a Bearer challenge, distinct for malformed and unknown', async () => {
    const none = await s.api('GET', '/api/v1/tokens', undefined, null);
    expectProblem(none, 401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="tokenwarden"/);
    const bad = await s.api('GET', '/api/v1/tokens', undefined, 'twd_nonsense');
    expectProblem(bad, 401);
    expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('walks seed 003: admin creates a bot, mints write:sasquatch, the response carries the token once', async () => {
    expect((await s.api('POST', '/api/v1/scopes', { name: 'write:sasquatch', description: 'write metrics to Sasquatch' })).status).toBe(201);
    const actor = await s.api('POST', '/api/v1/actors', { name: 'bot-jenkins', kind: 'service', scopes: ['write:sasquatch'] });
    expect(actor.status).toBe(201);
    const created = await s.api('POST', '/api/v1/tokens', { actor: 'bot-jenkins', name: 'jenkins writes', scopes: ['write:sasquatch'], expiresIn: '30d' });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(created.body.token).toMatch(/^twd_/);
    expect(created.body).toMatchObject({ actor: 'bot-jenkins', scopes: ['write:sasquatch'], state: 'active' });
    const shown = await s.api('GET', `/api/v1/tokens/${created.body.id}`);
    expect(shown.status).toBe(200);
    expect(JSON.stringify(shown.body)).not.toContain(created.body.token);
    expect(shown.body.token).toBeUndefined();
    const listed = await s.api('GET', '/api/v1/tokens?actor=bot-jenkins');
    expect(listed.body.items.map((t: any) => t.id)).toEqual([created.body.id]);
    expect(JSON.stringify(listed.body)).not.toContain('secret');
    // the database holds a hash, not the secret
    const db = new Database(s.dbPath, { readonly: true });
    const row = db.prepare('select * from tokens where id = ?').get(created.body.id) as Record<string, unknown>;
    db.close();
    expect(JSON.stringify(row)).not.toContain(created.body.token.slice(17, 60));
    expect(row.secret_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('answers bad input with a 4xx problem naming the field', async () => {
    expectProblem(await s.api('POST', '/api/v1/actors', { name: 'prometheus', kind: 'service' }), 400, 'name');
    expectProblem(await s.api('POST', '/api/v1/actors', { name: 'bot-x', kind: 'robot' }), 400);
    expectProblem(await s.api('POST', '/api/v1/actors', { name: 'bot-x', kind: 'service', colour: 'blue' }), 400, 'colour');
    expectProblem(await s.api('POST', '/api/v1/tokens', { name: 'x', scopes: ['no.such.scope'] }), 400, 'scopes');
    expectProblem(await s.api('POST', '/api/v1/tokens', { name: 'x', scopes: ['metrics.read'], expiresIn: '100y' }), 400, 'expiresIn');
    expectProblem(await s.api('POST', '/api/v1/tokens', { name: 'x', scopes: ['metrics.read'], expiresIn: '4000d' }), 400, 'expiresIn');
    expectProblem(await s.api('POST', '/api/v1/tokens', { actor: 'bot-ghost', name: 'x', scopes: ['metrics.read'] }), 400, 'actor');
    expectProblem(await s.api('POST', '/api/v1/tokens', { scopes: ['metrics.read'] }), 400, 'name');
    expectProblem(await s.api('POST', '/api/v1/tokens', '{"name": "x", '), 400);
    expectProblem(await s.api('POST', '/api/v1/tokens', 'name=x', undefined, { 'content-type': 'text/plain' }), 400);
    expectProblem(await s.api('POST', '/api/v1/tokens', { name: 'x'.repeat(70_000), scopes: [] }), 413);
    expectProblem(await s.api('GET', '/api/v1/tokens/doesnotexist'), 404);
    expectProblem(await s.api('GET', '/api/v1/nothing-here'), 404);
    await s.api('POST', '/api/v1/tokens', { name: 'dup', scopes: ['metrics.read'] });
    expectProblem(await s.api('POST', '/api/v1/tokens', { name: 'dup', scopes: ['metrics.read'] }), 409, 'name');
  });

  it('enforces permissions: a metrics-read token cannot manage anything', async () => {
    const { token } = await mintFor(s, 'bot-scraper', ['metrics.read']);
    expectProblem(await s.api('POST', '/api/v1/actors', { name: 'bot-y', kind: 'service' }, token), 403);
    expectProblem(await s.api('GET', '/api/v1/audit', undefined, token), 403);
    expectProblem(await s.api('POST', '/api/v1/tokens', { actor: 'admin', name: 'steal', scopes: ['admin:token'] }, token), 403);
    // it may see and mint within its own scopes
    const own = await s.api('POST', '/api/v1/tokens', { name: 'mine', scopes: ['metrics.read'], expiresIn: '1h' }, token);
    expect(own.status).toBe(201);
    const list = await s.api('GET', '/api/v1/tokens', undefined, token);
    expect(new Set(list.body.items.map((t: any) => t.actor))).toEqual(new Set(['bot-scraper']));
  });

  it('revokes, replaces, and lists unused tokens', async () => {
    const { id, token } = await mintFor(s, 'bot-rot', ['metrics.read']);
    const repl = await s.api('POST', `/api/v1/tokens/${id}/replace`, { grace: '5m' });
    expect(repl.status).toBe(201);
    expect(repl.body.replaces).toBe(id);
    expect((await s.api('GET', '/api/v1/whoami', undefined, token)).status).toBe(200); // within grace
    const revoked = await s.api('DELETE', `/api/v1/tokens/${id}`);
    expect(revoked.body.state).toBe('revoked');
    expect((await s.api('GET', '/api/v1/whoami', undefined, token)).status).toBe(401);
    const unused = await s.api('GET', '/api/v1/tokens/unused?days=0');
    expect(unused.body.items.map((t: any) => t.id)).toContain(repl.body.id);
  });

  it('introspects (RFC 7662) only for holders of token.introspect', async () => {
    const { token } = await mintFor(s, 'bot-intro', ['metrics.read']);
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const ok = await s.api('POST', '/api/v1/introspect', `token=${token}`, undefined, form);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ active: true, scope: 'metrics.read', sub: 'bot-intro', token_type: 'Bearer' });
    expect(ok.body.exp).toBeGreaterThan(Date.now() / 1000);
    expect(ok.body).toMatchObject({ jti: token.slice(4, 16), iat: expect.any(Number) });
    expect(ok.body.iat).toBeLessThanOrEqual(Date.now() / 1000);
    // asking about a token is not using it
    await s.tw.ctx.verifier.lastUse.flush();
    expect((await s.api('GET', `/api/v1/tokens/${ok.body.jti}`)).body.lastUsed).toBeNull();
    expect((await s.api('POST', '/api/v1/introspect', { token: 'twd_garbage' })).body).toEqual({ active: false });
    expectProblem(await s.api('POST', '/api/v1/introspect', { token }, token), 403);
  });

  it('records last use (time, address, client) without a write per request', async () => {
    const { id, token } = await mintFor(s, 'bot-lastuse', ['metrics.read']);
    for (let i = 0; i < 5; i++) await s.api('GET', '/api/v1/whoami', undefined, token, { 'user-agent': 'Prometheus/2.42.0' });
    await s.tw.ctx.verifier.lastUse.flush();
    const t = await s.api('GET', `/api/v1/tokens/${id}`);
    expect(t.body.lastUsed).toMatchObject({ ip: '127.0.0.1', userAgent: 'Prometheus/2.42.0' });
  });

  it('serves an OpenAPI document generated from the validating schemas', async () => {
    const doc = await s.api('GET', '/api/v1/openapi.json', undefined, null);
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3\./);
    const create = doc.body.paths['/api/v1/tokens'].post;
    expect(create.requestBody.content['application/json'].schema.required).toEqual(expect.arrayContaining(['name', 'scopes']));
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/v1/actors', '/api/v1/audit', '/api/v1/introspect']));
  });

  it('has health and readiness endpoints, and gates /metrics on metrics.read', async () => {
    expect((await s.api('GET', '/healthz', undefined, null)).status).toBe(200);
    expect((await s.api('GET', '/readyz', undefined, null)).body).toMatchObject({ status: 'ready', store: 'sqlite' });
    expect((await s.api('GET', '/metrics', undefined, null)).status).toBe(401);
    const { token: noMetrics } = await mintFor(s, 'bot-nometrics', ['token.introspect']);
    expect((await s.api('GET', '/metrics', undefined, noMetrics)).status).toBe(403);
    const { token } = await mintFor(s, 'bot-prom', ['metrics.read']);
    const m = await s.api('GET', '/metrics', undefined, token);
    expect(m.status).toBe(200);
    expect(m.body).toContain('tokenwarden_verifications_total{result="ok"}');
  });

  it('keeps the audit log filterable by actor and action', async () => {
    const res = await s.api('GET', '/api/v1/audit?action=actor.create&actor=admin');
    expect(res.status).toBe(200);
    expect(res.body.items.length).toBeGreaterThan(0);
    expect(res.body.items.every((a: any) => a.action === 'actor.create' && a.actor === 'admin')).toBe(true);
    expect(res.body.items[0].requestId).toBeTruthy();
  });
});
