import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Authority, type Principal } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import { Problem } from '../src/errors.js';
import { connect } from '../src/store/connect.js';
import { Store } from '../src/store/store.js';
import { Verifier } from '../src/verify/verifier.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type PostgresServer, startPostgres } from './support/postgres.js';
import { lastUseBatchOf } from '../src/store/verify-lookup.js';

/** The same store behaviour, case by case, on the embedded SQLite file and on a real PostgreSQL server. */
const DAY = 86_400_000;
let pgServer: PostgresServer;

beforeAll(async () => {
  pgServer = await startPostgres({ name: 'store-engines' });
});
afterAll(async () => {
  await pgServer?.destroy();
});

describe.each(['sqlite', 'postgres'] as const)('store on %s', (engine) => {
  let store: Store;
  let clock: ManualClock;
  let authority: Authority;
  let admin: Principal;

  beforeEach(async () => {
    const url = engine === 'sqlite' ? join(tempDir('engines'), 'tw.db') : await pgServer.createDatabase('engines');
    store = new Store(await connect(url));
    clock = new ManualClock();
    authority = new Authority(store, clock, { maxLifetimeMs: 90 * DAY, defaultLifetimeMs: 30 * DAY });
    const boot = await authority.bootstrap();
    rememberSecret(boot!.plaintext);
    const v = await verifier().verify(boot!.plaintext, { ip: '10.0.0.1', userAgent: 'test' });
    if (!v.ok) throw new Error(v.reason);
    admin = { actorId: v.identity.actorId, actorName: 'admin', tokenId: v.identity.tokenId, scopes: v.identity.scopes, ip: '10.0.0.1', requestId: 'r1' };
  });
  afterEach(async () => store.close());

  const verifier = () => new Verifier(store, clock, { cacheTtlMs: 0, negativeTtlMs: 0, cacheSize: 10, failureLimit: 0, failureWindowMs: 1 });

  it('reports its engine and migrates once (a second connect finds nothing to do)', async () => {
    expect(store.engine).toBe(engine);
    const again = new Store(await connect(engine === 'sqlite' ? store.location : pgServer.url(new URL(store.location).pathname.slice(1))));
    expect(await again.countActors()).toBe(1);
    await again.close();
  });

  it('creates identities with roles and reports their scopes (direct ∪ roles)', async () => {
    await authority.createScope(admin, { name: 'write:sasquatch' });
    const bot = await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'], scopes: ['write:sasquatch'] });
    expect(bot.effectiveScopes).toEqual(['metrics.read', 'write:sasquatch']);
    expect(await store.scopesOfActor(bot.id)).toEqual(['metrics.read', 'write:sasquatch']);
    expect(await store.scopesOfActor('no-such-id')).toEqual([]);
    expect(await store.rolesOfActor(bot.id)).toEqual(['metrics-read']);
    expect((await store.roleAssignments()).get(bot.id)).toEqual(['metrics-read']);
    expect(await store.countActors()).toBe(2);
    expect((await store.listActors()).map((a) => a.name)).toEqual(['admin', 'bot-a']);
  });

  it('mints, verifies, lists and revokes tokens; timestamps stay exact numbers', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const t = await authority.createToken(admin, { actor: 'bot-a', name: 'scrape', scopes: ['metrics.read'] });
    rememberSecret(t.plaintext);
    const row = (await store.findToken(t.token.id))!;
    expect(row.created_at).toBe(clock.now());
    expect(typeof row.expires_at).toBe('number');
    expect(row.expires_at).toBe(clock.now() + 30 * DAY);
    expect((await verifier().verify(t.plaintext, { ip: null, userAgent: null })).ok).toBe(true);
    expect((await store.listTokens({ state: 'active', now: clock.now(), search: 'scra' })).map((r) => r.id)).toEqual([t.token.id]);

    clock.advance(1000);
    await authority.revokeToken(admin, t.token.id, 'done');
    expect((await store.findToken(t.token.id))!.revoked_at).toBe(clock.now());
    expect(await verifier().verify(t.plaintext, { ip: null, userAgent: null })).toMatchObject({ ok: false, reason: 'revoked' });
    expect((await store.listTokens({ state: 'revoked' })).map((r) => r.id)).toEqual([t.token.id]);
    // revoking twice changes nothing
    expect(await store.revokeToken(t.token.id, clock.now() + 5, 'x', null)).toBe(false);
  });

  it('revokedSince returns what was revoked at or after a moment, as numbers', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const a = await authority.createToken(admin, { actor: 'bot-a', name: 'a', scopes: ['metrics.read'] });
    const b = await authority.createToken(admin, { actor: 'bot-a', name: 'b', scopes: ['metrics.read'] });
    const t0 = clock.now();
    await authority.revokeToken(admin, a.token.id);
    clock.advance(10_000);
    await authority.revokeToken(admin, b.token.id);
    expect(await store.revokedSince(t0 + 1)).toEqual([{ id: b.token.id, revoked_at: t0 + 10_000 }]);
    expect((await store.revokedSince(t0)).map((r) => r.id).sort()).toEqual([a.token.id, b.token.id].sort());
  });

  it('records the audit trail in order, with numeric sequence numbers', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const t = await authority.createToken(admin, { actor: 'bot-a', name: 's', scopes: ['metrics.read'] });
    await authority.revokeToken(admin, t.token.id, 'gone');
    const rows = await store.listAudit({});
    expect(rows.map((r) => r.action)).toEqual(['token.revoke', 'token.create', 'actor.create', 'system.bootstrap']);
    expect(typeof rows[0].seq).toBe('number');
    expect(rows[0].seq).toBeGreaterThan(rows[1].seq);
    expect(rows[0]).toMatchObject({ actor_name: 'admin', source_ip: '10.0.0.1', request_id: 'r1', target_id: t.token.id, at: clock.now() });
    expect(await store.listAudit({ action: 'token.' })).toHaveLength(2);
    expect(await store.listAudit({ beforeSeq: rows[1].seq })).toHaveLength(2);
  });

  it('keeps the latest last use, written in batches, never going backwards', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const t = await authority.createToken(admin, { actor: 'bot-a', name: 's', scopes: ['metrics.read'] });
    const at = clock.now() + 5000;
    await store.recordLastUse(lastUseBatchOf([{ id: t.token.id, at, ip: '10.1.2.3', agent: 'prometheus/2.42' }]));
    await store.recordLastUse(lastUseBatchOf([{ id: t.token.id, at: at - 1000, ip: '10.9.9.9', agent: 'old' }]));
    expect(await store.findToken(t.token.id)).toMatchObject({ last_used_at: at, last_used_ip: '10.1.2.3', last_used_agent: 'prometheus/2.42' });
  });

  it('refuses duplicate names: identities by the schema, live tokens by the authority', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const dup = { id: 'other-id', name: 'bot-a', kind: 'service' as const, description: '', scopes: '[]', disabled: 0, created_at: 1, created_by: null };
    await expect(store.insertActor(dup)).rejects.toThrow();
    await authority.createToken(admin, { actor: 'bot-a', name: 'scrape', scopes: ['metrics.read'] });
    await expect(authority.createToken(admin, { actor: 'bot-a', name: 'scrape', scopes: ['metrics.read'] })).rejects.toBeInstanceOf(Problem);
    expect((await store.listTokens({})).filter((t) => t.name === 'scrape')).toHaveLength(1);
  });

  it('rolls a transaction back whole when it fails part-way', async () => {
    const before = await store.countActors();
    const row = (name: string) => ({ id: `id-${name}`, name, kind: 'service' as const, description: '', scopes: '[]', disabled: 0, created_at: 1, created_by: null });
    await expect(
      store.transaction(async (s) => {
        await s.insertActor(row('bot-first'));
        await s.putSetting('half', 'written');
        await s.insertActor(row('bot-first')); // unique violation: everything above must vanish
      }),
    ).rejects.toThrow();
    expect(await store.countActors()).toBe(before);
    expect(await store.findActorByName('bot-first')).toBeUndefined();
    expect(await store.getSetting('half')).toBeUndefined();
    // and an error thrown by our own code rolls back as well
    await expect(
      store.transaction(async (s) => {
        await s.insertActor(row('bot-second'));
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(await store.findActorByName('bot-second')).toBeUndefined();
  });

  it('deleting an identity revokes its tokens and disables it in one change', async () => {
    const bot = await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const t = await authority.createToken(admin, { actor: 'bot-a', name: 's', scopes: ['metrics.read'] });
    const res = await authority.deleteActor(admin, 'bot-a');
    expect(res.revoked).toEqual([t.token.id]);
    expect((await store.findToken(t.token.id))!.revoked_at).toBe(clock.now());
    expect((await store.findActorById(bot.id))!.disabled).toBe(1);
  });

  it('settings upsert', async () => {
    await store.putSetting('k', 'v1');
    await store.putSetting('k', 'v2');
    expect(await store.getSetting('k')).toBe('v2');
    await store.ping();
  });
});
