import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { ConfigError, loadConfig } from '../src/config/server-config.js';
import type { DeliveryController } from '../src/delivery/controller.js';
import { StoreLease } from '../src/delivery/leader/lease.js';
import { LostLeadership } from '../src/delivery/rotation/rotation.js';
import { TOKEN_PATTERN } from '../src/token/format.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, startTestServer } from './support/server.js';

/**
 * The rotation state machine on a real SQLite file and real files, with time moved by hand:
 * every step (deliver, confirm by usage, grace, revoke) is observed, as are retries and removal.
 */
const clock = new ManualClock(Date.UTC(2026, 0, 1));
let s: TestServer;
let ctl: DeliveryController;
let dir: string;

const SEC = 1000;
const MIN = 60 * SEC;

const readToken = (path: string) => rememberSecret(readFileSync(path, 'utf8').trim());
const auth = async (token: string) => (await s.api('GET', '/auth?scope=metrics.read', undefined, token)).status;
const binding = async (name: string) => (await s.api('GET', `/api/v1/bindings/${name}`)).body;
const liveTokensOf = async (name: string) => {
  const b = await s.api('GET', '/api/v1/tokens?state=active');
  const id = (await s.tw.ctx.store.kysely.selectFrom('tokens').select('binding_id').where('name', '=', `binding:${name}`).executeTakeFirst())?.binding_id;
  return (b.body.items as any[]).filter((t) => t.bindingId === id && id);
};

function spec(name: string, path: string, rotation: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    name,
    actor: 'bot-scraper',
    scopes: ['metrics.read'],
    lifetime: '1h',
    sinks: [{ kind: 'file', path }],
    rotation: { at: 0.5, jitter: 0, grace: '30s', confirm: 'usage', quiet: '1m', confirmTimeout: '10m', ...rotation },
    ...extra,
  };
}

beforeAll(async () => {
  dir = tempDir('rotation');
  s = await startTestServer({ clock, config: { verify: { failureLimit: 100000 }, delivery: { fileRoots: [dir] } }, delivery: { autoStart: false, retryBaseMs: 1000, pollMs: 1000, watchSinks: false } });
  // These tests drive the resync (delivery.resync) with the clock; sink watches, which heal sooner in real time, are test/binding-heal.test.ts's.
  ctl = s.tw.ctx.delivery!;
  expect((await s.api('POST', '/api/v1/actors', { name: 'bot-scraper', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
});
afterAll(async () => s?.close());

describe('rotation state machine (ManualClock, real SQLite, real files)', () => {
  let first: string;
  const path = () => join(dir, 'scrape.token');

  it('delivers the first token on create: mode 0600, a working metrics.read token, one live token', async () => {
    const res = await s.api('POST', '/api/v1/bindings', spec('scrape', path()));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ name: 'scrape', state: 'active', healthy: true, origin: 'api', inFlight: null });
    expect(statSync(path()).mode & 0o777).toBe(0o600);
    first = readToken(path());
    expect(first.slice(4, 16)).toBe(res.body.tokenId);
    expect(await auth(first)).toBe(200);
    expect(res.body.expiresAt).toBe(new Date(clock.now() + 60 * MIN).toISOString());
    expect(res.body.nextRotationAt).toBe(new Date(clock.now() + 30 * MIN).toISOString());
    expect((await liveTokensOf('scrape')).map((t) => t.id)).toEqual([res.body.tokenId]);
  });

  it('rotates at the fraction of the lifetime; revokes the old token only after the new one is used, the old one is quiet, and the grace period passed', async () => {
    clock.advance(30 * MIN);
    await ctl.tick();
    const second = readToken(path());
    expect(second).not.toBe(first);
    let b = await binding('scrape');
    expect(b).toMatchObject({ state: 'rotating', inFlight: { step: 'confirm' }, tokenId: second.slice(4, 16) });

    await ctl.tick(); // nobody has used the new token: still waiting, the old one still works
    expect((await binding('scrape')).inFlight.step).toBe('confirm');
    expect(await auth(first)).toBe(200);

    expect(await auth(second)).toBe(200); // the consumer picks up the new file...
    await ctl.tick(); // ...but the old token was used a moment ago: not quiet yet
    expect((await binding('scrape')).inFlight.step).toBe('confirm');

    clock.advance(61 * SEC);
    await ctl.tick(); // confirmed; the grace period starts
    b = await binding('scrape');
    expect(b.inFlight.step).toBe('grace');
    expect(await auth(first)).toBe(200);

    clock.advance(31 * SEC);
    await ctl.tick();
    b = await binding('scrape');
    expect(b).toMatchObject({ state: 'active', healthy: true, inFlight: null, lastError: null });
    expect(await auth(first)).toBe(401);
    expect(await auth(second)).toBe(200);
    expect((await liveTokensOf('scrape')).map((t) => t.id)).toEqual([second.slice(4, 16)]);

    const history = (await s.api('GET', '/api/v1/bindings/scrape/history')).body.items;
    expect(history.map((r: any) => [r.seq, r.reason, r.step])).toEqual([
      [2, 'scheduled', 'done'],
      [1, 'initial', 'done'],
    ]);
    expect(history[0]).toMatchObject({ oldTokenId: first.slice(4, 16), newTokenId: second.slice(4, 16) });
    const metrics = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_rotations_total');
    expect(metrics).toContain('tokenwarden_rotations_total{binding="scrape",outcome="success"} 2');
    first = second;
  });

  it('keeps the old token when the new one is never confirmed, reports it, and finishes once it is used', async () => {
    const rotate = await s.api('POST', '/api/v1/bindings/scrape/rotate');
    expect(rotate.status).toBe(202);
    expect(rotate.body.inFlight).toMatchObject({ step: 'confirm' });
    const third = readToken(path());
    clock.advance(11 * MIN);
    await ctl.tick();
    let b = await binding('scrape');
    expect(b.state).toBe('failing');
    expect(b.healthy).toBe(false);
    expect(b.lastError).toMatch(/not confirmed after 600s: the new token has not been seen in use yet; the old token stays valid/);
    expect((await s.api('POST', '/api/v1/bindings/scrape/rotate')).status).toBe(409);
    expect(await auth(third)).toBe(200);
    clock.advance(2 * SEC);
    await ctl.tick(); // the old token was last used 11 minutes ago: quiet
    clock.advance(31 * SEC);
    await ctl.tick();
    b = await binding('scrape');
    expect(b).toMatchObject({ state: 'active', healthy: true, lastError: null, tokenId: third.slice(4, 16) });
    expect(await auth(first)).toBe(401);
    first = third;
  });

  it('retries a failing sink with exponential backoff, keeps the old token valid, and reports the error without secrets', async () => {
    const d2 = join(dir, 'flaky');
    mkdirSync(d2);
    const p2 = join(d2, 'token');
    expect((await s.api('POST', '/api/v1/bindings', spec('flaky', p2, { confirm: 'none', grace: '0s' }))).status).toBe(201);
    const old = readToken(p2);
    rmSync(d2, { recursive: true });
    await s.api('POST', '/api/v1/bindings/flaky/rotate');
    let b = await binding('flaky');
    expect(b.state).toBe('failing');
    expect(b.inFlight).toMatchObject({ step: 'deliver', attempts: 1 });
    expect(b.lastError).toMatch(/^deliver: delivery failed: sinks\.0 \(file:.*flaky\/token\): the directory .*flaky does not exist/);
    expect(b.lastError).not.toMatch(TOKEN_PATTERN);
    expect(await auth(old)).toBe(200);
    const sinkErrors = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_sink_errors_total');
    expect(sinkErrors).toContain('tokenwarden_sink_errors_total{binding="flaky",sink="file"} 1');

    await ctl.tick(); // the retry is not due yet (about 1 s)
    expect((await binding('flaky')).inFlight.attempts).toBe(1);
    clock.advance(1300);
    await ctl.tick();
    expect((await binding('flaky')).inFlight.attempts).toBe(2);
    clock.advance(1300); // the second retry waits about 2 s
    await ctl.tick();
    expect((await binding('flaky')).inFlight.attempts).toBe(2);

    mkdirSync(d2);
    clock.advance(1500);
    await ctl.tick();
    b = await binding('flaky');
    expect(b).toMatchObject({ state: 'active', inFlight: null, lastError: null });
    const fresh = readToken(p2);
    expect(fresh).not.toBe(old);
    expect(await auth(old)).toBe(401);
    expect(await auth(fresh)).toBe(200);
  });

  it('rotates at once when the sinks change, and deletes a sink dropped from the spec', async () => {
    const p2 = join(dir, 'flaky', 'token');
    const extra = join(dir, 'extra.token');
    let res = await s.api('PUT', '/api/v1/bindings/flaky', { ...spec('flaky', p2, { confirm: 'none', grace: '0s' }), sinks: [{ kind: 'file', path: p2 }, { kind: 'file', path: extra, mode: '0640' }] });
    expect(res.status).toBe(200);
    expect(readToken(extra)).toBe(readToken(p2));
    expect(statSync(extra).mode & 0o777).toBe(0o640);
    res = await s.api('PUT', '/api/v1/bindings/flaky', spec('flaky', p2, { confirm: 'none', grace: '0s' }));
    expect(res.status).toBe(200);
    expect(existsSync(extra)).toBe(false);
    const history = (await s.api('GET', '/api/v1/bindings/flaky/history')).body.items;
    expect(history.slice(0, 2).map((r: any) => r.reason)).toEqual(['spec-change', 'spec-change']);
    // a policy-only change reschedules without a new token
    const before = res.body.tokenId;
    res = await s.api('PUT', '/api/v1/bindings/flaky', spec('flaky', p2, { confirm: 'none', grace: '0s', at: 0.9 }));
    expect(res.body.tokenId).toBe(before);
  });

  it("leaves a binding's tokens out of the unused report unless asked: revoking one by hand would break its consumer", async () => {
    const managed = (await binding('scrape')).tokenId;
    const far = await s.api('GET', '/api/v1/tokens/unused?days=0');
    expect(far.body.items.map((t: any) => t.id)).not.toContain(managed);
    const all = await s.api('GET', '/api/v1/tokens/unused?days=0&includeManaged=true');
    expect(all.body.items.map((t: any) => t.id)).toContain(managed);
  });

  it('removal revokes every token of the binding and deletes what it delivered', async () => {
    const token = readToken(path());
    const res = await s.api('DELETE', '/api/v1/bindings/scrape');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'scrape', state: 'removed' });
    expect(existsSync(path())).toBe(false);
    expect(await auth(token)).toBe(401);
    expect((await s.api('GET', '/api/v1/bindings/scrape')).status).toBe(404);
    const all = (await s.api('GET', '/api/v1/tokens')).body.items.filter((t: any) => t.name === 'binding:scrape');
    expect(all.length).toBe(3); // initial, scheduled, manual
    expect(all.every((t: any) => t.state === 'revoked')).toBe(true);
  });

  it('refuses bad input with a problem naming the field, and writes nothing', async () => {
    const p = join(dir, 'bad.token');
    const cases: [Record<string, unknown>, string, number][] = [
      [{ ...spec('bad', p), actor: 'bot-nobody' }, 'actor', 400],
      [{ ...spec('bad', p), scopes: ['admin:token'] }, 'scopes', 400],
      [{ ...spec('bad', p), scopes: ['no.such.scope'] }, 'scopes', 400],
      [spec('bad', join(dir, 'missing-dir', 'x.token')), 'sinks.0.path', 400],
      [spec('bad', 'relative.token'), 'sinks.0.path', 400],
      [spec('bad', p, { at: 1.5 }), 'rotation.at', 400],
      [spec('bad', p, { at: 0.9, jitter: 0.2 }), 'rotation.jitter', 400],
      [{ ...spec('bad', p), lifetime: '0s' }, 'lifetime', 400],
      [{ ...spec('bad', p), lifetime: 'soon' }, 'lifetime', 400],
      [{ ...spec('bad', p), lifetime: '400d' }, 'lifetime', 400],
      [{ ...spec('bad', p), sinks: [{ kind: 'kubernetes-secret', name: 'x', key: 'token' }] }, 'sinks.0.namespace', 400],
      [spec('bad', join(dir, 'flaky', 'token')), 'sinks.0', 409],
    ];
    for (const [body, field, status] of cases) {
      const res = await s.api('POST', '/api/v1/bindings', body);
      expect(res.status, `${field}: ${JSON.stringify(res.body)}`).toBe(status);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body.field, JSON.stringify(res.body)).toBe(field);
    }
    expect((await s.api('GET', '/api/v1/bindings/bad')).status).toBe(404);
    expect(existsSync(p)).toBe(false);
  });

  it('only lets a caller hand out scopes it holds, and needs binding.manage', async () => {
    await s.api('POST', '/api/v1/actors', { name: 'bot-ops', kind: 'service', roles: ['operator'] });
    // token.issue.service lets it bind bot-scraper at all (issuance policy); it still cannot hand out metrics.read, which its token lacks.
    const ops = await s.api('POST', '/api/v1/tokens', { actor: 'bot-ops', name: 'ops', scopes: ['binding.manage', 'binding.read', 'token.issue.service'] });
    const res = await s.api('POST', '/api/v1/bindings', spec('ops', join(dir, 'ops.token')), ops.body.token);
    expect(res.status).toBe(403);
    expect(res.body.field).toBe('scopes');
    const reader = await s.api('POST', '/api/v1/tokens', { actor: 'bot-scraper', name: 'reader', scopes: ['metrics.read'] });
    expect((await s.api('GET', '/api/v1/bindings', undefined, reader.body.token)).status).toBe(403);
    expect((await s.api('GET', '/api/v1/bindings', undefined, ops.body.token)).status).toBe(200);
  });

  it('reconciles config-declared bindings: created, protected from API edits, removed when dropped', async () => {
    const svc = s.tw.ctx.bindings!;
    const cfgPath = join(dir, 'config.token');
    const yaml = join(dir, 'tokenwarden.yaml');
    writeFileSync(
      yaml,
      `bindings:\n  - name: from-config\n    actor: bot-scraper\n    scopes: [metrics.read]\n    lifetime: 2h\n    sinks:\n      - { kind: file, path: ${cfgPath} }\n    rotation: { confirm: none }\n`,
    );
    const config = loadConfig({ file: yaml, env: {} });
    expect(config.bindings[0].rotation).toMatchObject({ at: 0.66, jitter: 0.05 });
    const result = await svc.reconcileConfig(config.bindings);
    expect(result).toMatchObject({ created: ['from-config'], problems: [] });
    await ctl.tick();
    expect((await binding('from-config')).state).toBe('active');
    const token = readToken(cfgPath);
    expect((await s.api('PUT', '/api/v1/bindings/from-config', spec('from-config', cfgPath))).status).toBe(409);
    expect((await s.api('DELETE', '/api/v1/bindings/from-config')).status).toBe(409);
    expect(await svc.reconcileConfig(config.bindings)).toMatchObject({ created: [], updated: [], removed: [] }); // idempotent
    expect((await svc.reconcileConfig([])).removed).toEqual(['from-config']);
    await ctl.tick();
    expect(existsSync(cfgPath)).toBe(false);
    expect(await auth(token)).toBe(401);

    writeFileSync(yaml, `bindings:\n  - name: broken\n    actor: bot-scraper\n    scopes: [metrics.read]\n    lifetime: 2h\n    sinks: [{ kind: file, path: /tmp/x }]\n    rotation: { at: 2 }\n`);
    expect(() => loadConfig({ file: yaml, env: {} })).toThrow(ConfigError);
    try {
      loadConfig({ file: yaml, env: {} });
    } catch (err) {
      expect((err as ConfigError).problems.join('\n')).toMatch(/bindings(\.0|\[0\])\.rotation\.at/);
    }
  });

  it('elects one leader through the store lease; a takeover bumps the fencing token and fences the old leader', async () => {
    const store = s.tw.ctx.store;
    const a = new StoreLease(store, clock, 'replica-a', { name: 'test-lease', ttlMs: 15 * SEC });
    const b = new StoreLease(store, clock, 'replica-b', { name: 'test-lease', ttlMs: 15 * SEC });
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    clock.advance(10 * SEC);
    expect(await a.acquire()).toBe(true); // renewed
    clock.advance(10 * SEC);
    expect(await b.acquire()).toBe(false); // still within the renewed lease
    const fencing = a.fencingToken;
    clock.advance(6 * SEC);
    expect(await b.acquire()).toBe(true);
    expect(b.fencingToken).toBe(fencing + 1);
    await expect(store.transaction((tx) => a.fence(tx))).rejects.toBeInstanceOf(LostLeadership);
    expect(a.leading).toBe(false);
    await store.transaction((tx) => b.fence(tx));
    await b.release();
    expect(await a.acquire()).toBe(true); // a released lease is free at once
  });
});

describe('drift between rotations (delivery.resync)', () => {
  const path = () => join(dir, 'drift.token');
  const settle = async () => {
    for (let i = 0; i < 5 && (await binding('drift')).state !== 'active'; i++) {
      clock.advance(SEC);
      await ctl.tick();
    }
    expect(await binding('drift')).toMatchObject({ state: 'active', inFlight: null });
  };
  const auditOf = async () => (await s.api('GET', '/api/v1/audit?action=binding.drift')).body.items.filter((a: any) => a.targetId === 'drift');

  it('reads every sink back each resync; an intact one is left alone (no write, no rotation)', async () => {
    const res = await s.api('POST', '/api/v1/bindings', spec('drift', path(), { confirm: 'none', grace: '0s' }, { lifetime: '1d' }));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await settle();
    const mtime = statSync(path()).mtimeMs;
    clock.advance(5 * MIN);
    const report = await ctl.tick();
    expect(report).toMatchObject({ leader: true, drifted: 0, started: 0 });
    expect(statSync(path()).mtimeMs).toBe(mtime);
    expect(await auditOf()).toEqual([]);
  });

  it('a deleted sink gets a fresh token at the next resync (reason "drift"), audited with the sink named', async () => {
    const before = readToken(path());
    rmSync(path());
    clock.advance(4 * MIN);
    expect((await ctl.tick()).drifted).toBe(0); // not yet: resync is every 5 minutes
    expect(existsSync(path())).toBe(false);
    clock.advance(1 * MIN);
    const report = await ctl.tick();
    expect(report).toMatchObject({ drifted: 1, started: 1 });
    const after = readToken(path());
    expect(after).not.toBe(before);
    expect(await auth(after)).toBe(200);
    await settle();
    expect(await auth(before)).toBe(401); // confirm: none, grace 0: the old one goes with the rotation
    const history = (await s.api('GET', '/api/v1/bindings/drift/history')).body.items;
    expect(history[0]).toMatchObject({ reason: 'drift', step: 'done', oldTokenId: before.slice(4, 16), newTokenId: after.slice(4, 16) });
    const [audit] = await auditOf();
    expect(audit).toMatchObject({ actor: 'controller', detail: { sinks: [`file:${path()} is missing`] } });
    const metrics = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_sink_drift_total');
    expect(metrics).toContain('tokenwarden_sink_drift_total{binding="drift"} 1');
  });

  it('a sink overwritten with another token (an old backup) is put right too; the content never reaches the audit log', async () => {
    const current = readToken(path());
    const stale = rememberSecret((await s.api('POST', '/api/v1/tokens', { actor: 'bot-scraper', name: 'stale-copy', scopes: ['metrics.read'] })).body.token);
    writeFileSync(path(), `${stale}\n`);
    clock.advance(5 * MIN);
    expect((await ctl.tick()).drifted).toBe(1);
    const now = readToken(path());
    expect([current, stale]).not.toContain(now);
    await settle();
    const audits = await auditOf();
    expect(audits[0].detail).toEqual({ sinks: [`file:${path()} holds another token`] });
    expect(JSON.stringify(audits)).not.toContain(stale.slice(17));
  });
});
