import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Authority, type Principal } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import { connect } from '../src/store/connect.js';
import { Store } from '../src/store/store.js';
import { Verifier } from '../src/verify/verifier.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type PostgresServer, startPostgres } from './support/postgres.js';
import { lastUseBatchOf } from '../src/store/verify-lookup.js';

/**
 * The cold path (no verdict cache): one prepared read of the token with its identity, and the
 * identity's effective scopes kept in memory until the grant-change fan-out drops them.
 */
const DAY = 86_400_000;
const src = { ip: '10.0.0.9', userAgent: 'cold-test' };
let pgServer: PostgresServer;
beforeAll(async () => {
  pgServer = await startPostgres({ name: 'verify-cold' });
});
afterAll(async () => {
  await pgServer?.destroy();
});

describe.each(['sqlite', 'postgres'] as const)('cold checks on %s', (engine) => {
  let store: Store;
  let clock: ManualClock;
  let authority: Authority;
  let admin: Principal;
  let verifier: Verifier;
  let botId: string;
  let token: string;

  beforeEach(async () => {
    const url = engine === 'sqlite' ? join(tempDir('verify-cold'), 'tw.db') : await pgServer.createDatabase('cold');
    store = new Store(await connect(url));
    clock = new ManualClock();
    authority = new Authority(store, clock, { maxLifetimeMs: 90 * DAY, defaultLifetimeMs: 30 * DAY });
    const boot = await authority.bootstrap();
    rememberSecret(boot!.plaintext);
    // No events: only what this test tells the verifier reaches its memory of scopes.
    verifier = new Verifier(store, clock, { cacheTtlMs: 0, negativeTtlMs: 0, cacheSize: 10, failureLimit: 0, failureWindowMs: 1 });
    const v = await verifier.verify(boot!.plaintext, src);
    if (!v.ok) throw new Error(v.reason);
    admin = { actorId: v.identity.actorId, actorName: 'admin', tokenId: v.identity.tokenId, scopes: v.identity.scopes, ip: src.ip, requestId: 'r1' };
    await authority.createScope(admin, { name: 'write:cold' });
    const bot = await authority.createActor(admin, { name: 'bot-cold', kind: 'service', roles: ['metrics-read'], scopes: ['write:cold'] });
    botId = bot.id;
    token = rememberSecret((await authority.createToken(admin, { actor: 'bot-cold', name: 'scrape', scopes: ['metrics.read', 'write:cold'] })).plaintext);
  });
  afterEach(async () => {
    await verifier.lastUse.stop();
    await store.close();
  });

  const scopes = async () => {
    const v = await verifier.verify(token, src);
    return v.ok ? v.identity.scopes : v.reason;
  };

  it('answers with the token joined with its identity: the same identity a fresh read of the store gives', async () => {
    const v = await verifier.verify(token, src);
    expect(v).toMatchObject({ ok: true, identity: { actorName: 'bot-cold', actorKind: 'service', tokenName: 'scrape', scopes: ['metrics.read', 'write:cold'] } });
    expect(await store.scopesOfActor(botId)).toEqual(['metrics.read', 'write:cold']);
    expect(await store.lookup.scopesOfActor(botId)).toEqual(await store.scopesOfActor(botId));
    expect(await store.lookup.scopesOfActor('no-such-id')).toEqual([]);
    expect(await store.lookup.token('nosuchtoken0')).toBeUndefined();
  });

  it("keeps an identity's scopes until told of a grant change, for that identity or for all", async () => {
    expect(await scopes()).toEqual(['metrics.read', 'write:cold']);
    // Written behind the verifier's back, as another process would before its poll or NOTIFY arrives.
    await store.setActorRoles(botId, []);
    expect(await scopes()).toEqual(['metrics.read', 'write:cold']);
    verifier.invalidateActor('someone-else');
    expect(await scopes()).toEqual(['metrics.read', 'write:cold']);
    verifier.invalidateActor(botId);
    expect(await scopes()).toEqual(['write:cold']);
    await store.updateActor(botId, { scopes: '[]' });
    await store.setActorRoles(botId, ['metrics-read']);
    verifier.invalidateActor('*');
    expect(await scopes()).toEqual(['metrics.read']);
  });

  it('reads disabled and revoked with the token on every cold check, without being told', async () => {
    expect(await scopes()).toEqual(['metrics.read', 'write:cold']);
    await store.updateActor(botId, { disabled: 1 });
    expect(await scopes()).toBe('disabled');
    await store.updateActor(botId, { disabled: 0 });
    expect(await scopes()).toEqual(['metrics.read', 'write:cold']);
    await store.revokeToken(token.slice(4, 16), clock.now(), 'admin', 'test');
    expect(await scopes()).toBe('revoked');
  });

  it('sees committed rows only: a revocation inside an open transaction counts once it commits', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let revoked!: () => void;
    const done = new Promise<void>((r) => (revoked = r));
    const trx = store.transaction(async (s) => {
      await s.revokeToken(token.slice(4, 16), clock.now(), 'admin', 'test');
      revoked();
      await held;
    });
    await done;
    expect(await scopes()).toEqual(['metrics.read', 'write:cold']);
    release();
    await trx;
    expect(await scopes()).toBe('revoked');
  });

  it('writes last uses in batches that never move a last use backwards', async () => {
    const id = token.slice(4, 16);
    await store.recordLastUse(lastUseBatchOf([{ id, at: 5000, ip: '10.1.1.1', agent: 'a' }, { id: 'nosuchtoken0', at: 1, ip: null, agent: null }]));
    await store.recordLastUse(lastUseBatchOf([{ id, at: 4000, ip: '10.2.2.2', agent: 'old' }]));
    expect(await store.findToken(id)).toMatchObject({ last_used_at: 5000, last_used_ip: '10.1.1.1', last_used_agent: 'a' });
    await store.recordLastUse(lastUseBatchOf([{ id, at: 6000, ip: null, agent: null }]));
    expect(await store.findToken(id)).toMatchObject({ last_used_at: 6000, last_used_ip: null, last_used_agent: null });
  });
});
