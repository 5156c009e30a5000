import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Authority, type Principal, SYSTEM_PRINCIPAL } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import { Problem } from '../src/errors.js';
import type { Store } from '../src/store/store.js';
import { Verifier } from '../src/verify/verifier.js';
import type { Core } from '../src/core.js';
import { startTestCore } from './support/core.js';
import { verifierSubscriber } from '../src/verify/fanout.js';

const DAY = 86_400_000;
let store: Store;
let clock: ManualClock;
let authority: Authority;
let core: Core;
let admin: Principal;

async function principalFor(token: string): Promise<Principal> {
  const v = await new Verifier(store, clock, { cacheTtlMs: 0, negativeTtlMs: 0, cacheSize: 10, failureLimit: 0, failureWindowMs: 1 }).verify(token, {
    ip: '10.0.0.1',
    userAgent: 'test',
  });
  if (!v.ok) throw new Error(`verify failed: ${v.reason}`);
  return { actorId: v.identity.actorId, actorName: v.identity.actorName, tokenId: v.identity.tokenId, scopes: v.identity.scopes, ip: '10.0.0.1', requestId: 'req-1' };
}

async function rejects(p: Promise<unknown>, status: number, field?: string): Promise<Problem> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Problem);
  expect((err as Problem).status).toBe(status);
  if (field) expect((err as Problem).extra.field).toBe(field);
  return err as Problem;
}

beforeEach(async () => {
  clock = new ManualClock();
  core = await startTestCore({ clock, config: { tokens: { maxLifetime: '90d', defaultLifetime: '30d' } } });
  ({ store, authority } = core);
  const boot = await authority.bootstrap();
  admin = await principalFor(boot!.plaintext);
});
afterEach(async () => core.close());

describe('authority rules', () => {
  it('bootstraps once: a second start creates no new admin credential', async () => {
    expect(await authority.bootstrap()).toBeNull();
    expect((await store.listActors()).map((a) => a.name)).toEqual(['admin']);
  });

  it('service identities must start with bot-, and bot- is reserved for services', async () => {
    await rejects(authority.createActor(admin, { name: 'prometheus', kind: 'service' }), 400, 'name');
    await rejects(authority.createActor(admin, { name: 'bot-x', kind: 'user' }), 400, 'name');
    await rejects(authority.createActor(admin, { name: 'Bad Name', kind: 'user' }), 400, 'name');
    const bot = await authority.createActor(admin, { name: 'bot-prometheus', kind: 'service', roles: ['metrics-read'] });
    expect(bot.effectiveScopes).toEqual(['metrics.read']);
    await rejects(authority.createActor(admin, { name: 'bot-prometheus', kind: 'service' }), 409, 'name');
  });

  it('refuses unknown scopes and roles, and scopes the identity is not granted', async () => {
    await rejects(authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['nope'] }), 400, 'roles');
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    await rejects(authority.createToken(admin, { actor: 'bot-a', name: 't', scopes: ['write:sasquatch'] }), 400, 'scopes');
    await authority.createScope(admin, { name: 'write:sasquatch' });
    const err = await rejects(authority.createToken(admin, { actor: 'bot-a', name: 't', scopes: ['write:sasquatch'] }), 400, 'scopes');
    expect(err.detail).toContain('not granted');
    await rejects(authority.createToken(admin, { actor: 'bot-nobody', name: 't', scopes: ['metrics.read'] }), 400, 'actor');
  });

  it("a new token's scopes must be a subset of the creator's token unless the creator holds admin:token", async () => {
    await authority.createScope(admin, { name: 'write:sasquatch' });
    await authority.createActor(admin, { name: 'alice', kind: 'user', scopes: ['metrics.read', 'write:sasquatch'] });
    const narrow = await authority.createToken(admin, { actor: 'alice', name: 'narrow', scopes: ['metrics.read'] });
    const alice = await principalFor(narrow.plaintext);
    // alice holds write:sasquatch through her grants, but her token does not: she cannot widen it.
    await rejects(authority.createToken(alice, { name: 'wider', scopes: ['write:sasquatch'] }), 403);
    const sub = await authority.createToken(alice, { name: 'sub', scopes: ['metrics.read'] });
    expect(sub.token.scopes).toEqual(['metrics.read']);
    // and she cannot mint for somebody else without admin:token
    await rejects(authority.createToken(alice, { actor: 'admin', name: 'x', scopes: ['metrics.read'] }), 403);
    // admin:token may mint any granted scope
    const wide = await authority.createToken(admin, { actor: 'alice', name: 'wide', scopes: ['write:sasquatch'] });
    expect(wide.token.scopes).toEqual(['write:sasquatch']);
  });

  it('every token expires, capped by the maximum lifetime', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const dflt = await authority.createToken(admin, { actor: 'bot-a', name: 'd', scopes: ['metrics.read'] });
    expect(Date.parse(dflt.token.expiresAt)).toBe(clock.now() + 30 * DAY);
    await rejects(authority.createToken(admin, { actor: 'bot-a', name: 'long', scopes: ['metrics.read'], lifetimeMs: 91 * DAY }), 400, 'expiresIn');
    await rejects(authority.createToken(admin, { actor: 'bot-a', name: 'past', scopes: ['metrics.read'], expiresAt: clock.now() - 1 }), 400, 'expiresIn');
  });

  it('duplicate live names are refused; nothing is half-written on refusal', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    await authority.createToken(admin, { actor: 'bot-a', name: 'scrape', scopes: ['metrics.read'] });
    const before = (await store.listAudit({})).length;
    await rejects(authority.createToken(admin, { actor: 'bot-a', name: 'scrape', scopes: ['metrics.read'] }), 409, 'name');
    expect((await store.listTokens({})).filter((t) => t.name === 'scrape')).toHaveLength(1);
    expect((await store.listAudit({})).length).toBe(before);
  });

  it('expired and revoked tokens never verify', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const short = await authority.createToken(admin, { actor: 'bot-a', name: 's', scopes: ['metrics.read'], lifetimeMs: 60_000 });
    const verifier = new Verifier(store, clock, { cacheTtlMs: 10_000, negativeTtlMs: 10_000, cacheSize: 10, failureLimit: 0, failureWindowMs: 1 });
    core.fanout.subscribe(verifierSubscriber(verifier));
    const src = { ip: '1.2.3.4', userAgent: null };
    expect((await verifier.verify(short.plaintext, src)).ok).toBe(true);
    clock.advance(60_000);
    expect(await verifier.verify(short.plaintext, src)).toMatchObject({ ok: false, reason: 'expired' });
    const other = await authority.createToken(admin, { actor: 'bot-a', name: 'o', scopes: ['metrics.read'] });
    expect((await verifier.verify(other.plaintext, src)).ok).toBe(true);
    await authority.revokeToken(admin, other.token.id, 'test');
    expect(await verifier.verify(other.plaintext, src)).toMatchObject({ ok: false, reason: 'revoked' });
  });

  it('replace mints a successor with the same identity, name and scopes and retires the old one', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const old = await authority.createToken(admin, { actor: 'bot-a', name: 'scrape', scopes: ['metrics.read'] });
    const next = await authority.replaceToken(admin, old.token.id, { graceMs: 60_000 });
    expect(next.token).toMatchObject({ actor: 'bot-a', name: 'scrape', scopes: ['metrics.read'], replaces: old.token.id });
    expect((await store.findToken(old.token.id))!.expires_at).toBe(clock.now() + 60_000);
    const again = await authority.replaceToken(admin, next.token.id);
    expect((await store.findToken(next.token.id))!.revoked_at).toBe(clock.now());
    expect(again.plaintext).not.toBe(next.plaintext);
  });

  it('losing a role takes the scope away from live tokens', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const t = await authority.createToken(admin, { actor: 'bot-a', name: 's', scopes: ['metrics.read'] });
    await authority.updateActor(admin, 'bot-a', { roles: [] });
    expect((await principalFor(t.plaintext)).scopes).toEqual([]);
  });

  it('deleting an identity revokes all its tokens', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const t = await authority.createToken(admin, { actor: 'bot-a', name: 's', scopes: ['metrics.read'] });
    const res = await authority.deleteActor(admin, 'bot-a');
    expect(res.revoked).toEqual([t.token.id]);
    expect((await store.findToken(t.token.id))!.revoked_at).not.toBeNull();
  });

  it('audits every change with who, what, when, where and request id, never a secret or hash', async () => {
    await authority.createActor(admin, { name: 'bot-a', kind: 'service', roles: ['metrics-read'] });
    const t = await authority.createToken(admin, { actor: 'bot-a', name: 's', scopes: ['metrics.read'] });
    await authority.revokeToken(admin, t.token.id, 'done');
    const rows = await store.listAudit({});
    expect(rows.map((r) => r.action)).toEqual(['token.revoke', 'token.create', 'actor.create', 'system.bootstrap']);
    const revoke = rows[0];
    expect(revoke).toMatchObject({ actor_name: 'admin', source_ip: '10.0.0.1', request_id: 'req-1', target_id: t.token.id, at: clock.now() });
    const hash = (await store.findToken(t.token.id))!.secret_hash;
    const all = JSON.stringify(rows);
    expect(all).not.toContain(t.plaintext.slice(17, 60));
    expect(all).not.toContain(hash);
  });

  it('the system principal is not a token holder', () => {
    expect(SYSTEM_PRINCIPAL.tokenId).toBeNull();
  });
});
