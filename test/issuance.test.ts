import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteMintSource, RemoteTokenwarden } from '../src/agent/remote-mint.js';
import { type Principal, SYSTEM_PRINCIPAL } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import { Problem } from '../src/errors.js';
import { BindingQueries } from '../src/store/bindings.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, startTestServer } from './support/server.js';

/**
 * The one issuance policy (src/authority/issuance.ts), seen from every path that yields a token:
 * each forbidden request is refused by each path with the same problem, and nothing is written.
 */
const clock = new ManualClock(Date.UTC(2026, 0, 1));
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
let s: TestServer;
let dir: string;
const tok: Record<string, { token: string; id: string; expiresAt: string }> = {};

const tokenCount = async () => (await s.tw.ctx.store.listTokens({ limit: 100_000 })).length;
const bindingCount = async () => (await new BindingQueries(s.tw.ctx.store).list()).length;
const auth = async (token: string) => (await s.api('GET', '/auth?scope=metrics.read', undefined, token)).status;

async function actor(name: string, body: Record<string, unknown>) {
  const res = await s.api('POST', '/api/v1/actors', { name, kind: name.startsWith('bot-') ? 'service' : 'user', ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}
async function mint(key: string, body: Record<string, unknown>, as = s.adminToken) {
  const res = await s.api('POST', '/api/v1/tokens', { name: key, ...body }, as);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  tok[key] = { token: res.body.token, id: res.body.id, expiresAt: res.body.expiresAt };
  return res.body;
}
const bindingSpec = (name: string, actorName: string, scopes: readonly string[], lifetime: string) => ({
  name,
  actor: actorName,
  scopes: [...scopes],
  lifetime,
  sinks: [{ kind: 'file', path: join(dir, `${name}.token`) }],
  rotation: { at: 0.5, jitter: 0 },
});

beforeAll(async () => {
  dir = tempDir('issuance');
  s = await startTestServer({
    clock,
    config: { tokens: { maxLifetime: '30d', defaultLifetime: '7d' }, verify: { failureLimit: 100_000 }, delivery: { fileRoots: [dir] } },
    delivery: { autoStart: false },
  });
  await actor('ops', { roles: ['operator'] });
  await actor('carol', { scopes: ['binding.manage', 'metrics.read'] });
  await actor('bot-prometheus', { roles: ['metrics-read'] });
  await actor('bot-auditor', { roles: ['auditor'] });
  await actor('bot-shrunk', { scopes: ['metrics.read', 'binding.read'] });
  await actor('bot-rot', { scopes: ['metrics.read', 'binding.read'] });
  await mint('ops', { actor: 'ops', scopes: ['binding.manage', 'binding.read', 'metrics.read', 'token.issue.service'], expiresIn: '7d' });
  await mint('carol', { actor: 'carol', scopes: ['binding.manage', 'metrics.read'], expiresIn: '7d' });
});
afterAll(async () => s?.close());

/** The forbidden requests: who asks, for whom, which scopes, how long; and the problem every path must answer. */
const FORBIDDEN = [
  { name: 'another user identity without admin:token', caller: 'ops', actor: 'admin', scopes: ['metrics.read'], lifetime: '1h', status: 403, field: 'actor' },
  { name: 'a bot- identity without token.issue.service', caller: 'carol', actor: 'bot-prometheus', scopes: ['metrics.read'], lifetime: '1h', status: 403, field: 'actor' },
  { name: 'scopes the identity is not granted', caller: 'ops', actor: 'bot-prometheus', scopes: ['binding.read'], lifetime: '1h', status: 400, field: 'scopes' },
  { name: "scopes beyond the caller's token", caller: 'ops', actor: 'bot-auditor', scopes: ['audit.read'], lifetime: '1h', status: 403, field: 'scopes' },
  { name: 'a lifetime beyond tokens.maxLifetime', caller: 'ops', actor: 'bot-prometheus', scopes: ['metrics.read'], lifetime: '31d', status: 400, field: 'lifetime' },
] as const;
type Forbidden = (typeof FORBIDDEN)[number];

interface Refusal {
  status: number;
  body: { type: string; status: number; detail: string; field?: string };
}

/** POST /tokens's answer to a request: the reference every other path is compared with. */
async function reference(c: { caller: string; actor: string; scopes: readonly string[]; lifetime: string }): Promise<Refusal> {
  const res = await s.api('POST', '/api/v1/tokens', { actor: c.actor, name: 'reference', scopes: c.scopes, expiresIn: c.lifetime }, tok[c.caller]!.token);
  return res as Refusal;
}

/** Each issuing path: how it asks for a forbidden request, and its own name for the lifetime field; null: the path cannot ask this. */
const PATHS: { path: string; lifetimeField: string; mintsFixture?: boolean; attempt(c: Forbidden, i: number): Promise<Refusal | { agentError: string } | null> }[] = [
  { path: 'API POST /tokens', lifetimeField: 'expiresIn', attempt: (c) => reference(c) },
  {
    path: 'API POST /tokens/:id/replace',
    lifetimeField: 'expiresIn',
    mintsFixture: true, // the token to replace; it counts tokens itself
    async attempt(c) {
      // A token of that identity with those scopes, minted by the admin; for "not granted" the grant is taken away afterwards.
      const target = c.field === 'scopes' && c.status === 400 ? 'bot-shrunk' : c.actor;
      const old = await mint(`old-${target}-${c.scopes.join('+')}-${c.lifetime}`, { actor: target, scopes: c.scopes, expiresIn: '1h' });
      if (target === 'bot-shrunk') expect((await s.api('PATCH', '/api/v1/actors/bot-shrunk', { scopes: ['metrics.read'] })).status).toBe(200);
      const ref = await reference({ ...c, actor: target });
      const before = await tokenCount();
      const res = (await s.api('POST', `/api/v1/tokens/${old.id}/replace`, { expiresIn: c.lifetime }, tok[c.caller]!.token)) as Refusal;
      expect(await tokenCount()).toBe(before);
      expect(await auth(old.token)).toBe(old.scopes.includes('metrics.read') && target !== 'bot-shrunk' ? 200 : 403);
      expect(res.body).toMatchObject({ type: ref.body.type, status: ref.body.status, detail: ref.body.detail });
      return res;
    },
  },
  {
    path: 'API POST /bindings',
    lifetimeField: 'lifetime',
    attempt: async (c, i) => (await s.api('POST', '/api/v1/bindings', bindingSpec(`new-${i}`, c.actor, c.scopes, c.lifetime), tok[c.caller]!.token)) as Refusal,
  },
  {
    path: 'API PUT /bindings/:name (create)',
    lifetimeField: 'lifetime',
    attempt: async (c, i) => (await s.api('PUT', `/api/v1/bindings/put-${i}`, bindingSpec(`put-${i}`, c.actor, c.scopes, c.lifetime), tok[c.caller]!.token)) as Refusal,
  },
  {
    path: 'API PUT /bindings/:name (change an existing one)',
    lifetimeField: 'lifetime',
    async attempt(c) {
      const res = (await s.api('PUT', '/api/v1/bindings/held', bindingSpec('held', c.actor, c.scopes, c.lifetime), tok[c.caller]!.token)) as Refusal;
      const held = (await s.api('GET', '/api/v1/bindings/held')).body;
      expect(held).toMatchObject({ actor: 'bot-prometheus', scopes: ['metrics.read'], lifetime: '1h', state: 'active' });
      return res;
    },
  },
  {
    // The agent mints through POST /api/v1/tokens (src/agent/remote-mint.ts): the same route, the same answer.
    path: 'agent remote mint',
    lifetimeField: 'expiresIn',
    async attempt(c) {
      const remote = new RemoteTokenwarden({ url: s.url, token: { env: 'TW' } }, { TW: tok[c.caller]!.token });
      try {
        await new RemoteMintSource('agent-b', { actor: c.actor, scopes: [...c.scopes], lifetime: c.lifetime }, remote, {}, clock).fetch();
        return { agentError: 'minted' };
      } catch (err) {
        return { agentError: (err as Error).message };
      } finally {
        await remote.close();
      }
    },
  },
];

describe('one issuance policy: every issuing path refuses every forbidden request alike', () => {
  beforeAll(async () => {
    const held = await s.api('POST', '/api/v1/bindings', bindingSpec('held', 'bot-prometheus', ['metrics.read'], '1h'));
    expect(held.status, JSON.stringify(held.body)).toBe(201);
  });

  for (const [i, c] of FORBIDDEN.entries()) {
    it(`${c.name}: ${c.status} naming "${c.field}", nothing written, on every path`, async () => {
      const ref = await reference(c);
      const field = (path: { lifetimeField: string }) => (c.field === 'lifetime' ? path.lifetimeField : c.field);
      expect(ref.status, JSON.stringify(ref.body)).toBe(c.status);
      expect(ref.body.field).toBe(field({ lifetimeField: 'expiresIn' }));
      for (const path of PATHS) {
        const tokens = await tokenCount();
        const bindings = await bindingCount();
        const res = await path.attempt(c, i);
        if (!path.mintsFixture) expect(await tokenCount(), path.path).toBe(tokens);
        expect(await bindingCount(), path.path).toBe(bindings);
        if (res === null) continue;
        if ('agentError' in res) {
          expect(res.agentError, path.path).toContain(`/api/v1/tokens answered ${c.status}: ${ref.body.detail}`);
          continue;
        }
        expect(res.status, `${path.path}: ${JSON.stringify(res.body)}`).toBe(c.status);
        expect(res.body.field, path.path).toBe(field(path));
        if (path.path !== 'API POST /tokens/:id/replace') expect({ type: res.body.type, detail: res.body.detail }, path.path).toEqual({ type: ref.body.type, detail: ref.body.detail });
      }
    });
  }

  it('binding rotation (system principal) re-checks the grants with the same rule: refused, recorded, no token minted', async () => {
    const created = await s.api('POST', '/api/v1/bindings', bindingSpec('rot', 'bot-rot', ['binding.read'], '1h'));
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.tokenId).not.toBeNull();
    expect((await s.api('PATCH', '/api/v1/actors/bot-rot', { scopes: ['metrics.read'] })).status).toBe(200);
    const ref = await s.api('POST', '/api/v1/tokens', { actor: 'bot-rot', name: 'r', scopes: ['binding.read'] });
    expect(ref.status).toBe(400);
    const before = await tokenCount();
    await s.api('POST', '/api/v1/bindings/rot/rotate');
    await s.tw.ctx.delivery!.tick();
    const after = (await s.api('GET', '/api/v1/bindings/rot')).body;
    expect(after.state).toBe('failing');
    expect(after.lastError).toBe(`mint: ${ref.body.detail}`);
    expect(after.tokenId).toBe(created.body.tokenId);
    expect(await tokenCount()).toBe(before);
  });

  it('bootstrap / admin recover: the same lifetime rule and problem', async () => {
    const ref = await reference(FORBIDDEN[4]);
    const before = await tokenCount();
    const err = await s.tw.ctx.authority.recover({ lifetimeMs: 31 * DAY }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Problem);
    expect((err as Problem).toBody()).toMatchObject({ type: ref.body.type, status: 400, detail: ref.body.detail, field: 'expiresIn' });
    expect(await tokenCount()).toBe(before);
  });

  it('what an operator may do: bind bot-prometheus with metrics.read (a standalone token), never admin', async () => {
    const ok = await s.api('POST', '/api/v1/bindings', bindingSpec('ops-scrape', 'bot-prometheus', ['metrics.read'], '1h'), tok.ops!.token);
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const token = rememberSecret(readFileSync(join(dir, 'ops-scrape.token'), 'utf8').trim());
    expect(await auth(token)).toBe(200);
    expect((await s.api('GET', `/api/v1/tokens/${ok.body.tokenId}`)).body).toMatchObject({ actor: 'bot-prometheus', parent: null });
    const no = await s.api('POST', '/api/v1/bindings', bindingSpec('ops-admin', 'admin', ['metrics.read'], '1h'), tok.ops!.token);
    expect(no.status).toBe(403);
    expect(no.body.field).toBe('actor');
    expect(existsSync(join(dir, 'ops-admin.token'))).toBe(false);
  });
});

describe('tokens minted by tokens are bounded by them', () => {
  it('a child of a non-admin token records its parent, is capped at its expiry, and says so', async () => {
    const child = await mint('child', { actor: 'bot-prometheus', scopes: ['metrics.read'], expiresIn: '30d' }, tok.ops!.token);
    expect(child.parent).toBe(tok.ops!.id);
    expect(child.expiresAt).toBe(tok.ops!.expiresAt);
    expect(child.expiryCappedBy).toBe(tok.ops!.id);
    const shorter = await mint('child-short', { actor: 'bot-prometheus', scopes: ['metrics.read'], expiresIn: '1h' }, tok.ops!.token);
    expect(shorter).toMatchObject({ parent: tok.ops!.id, expiresAt: new Date(clock.now() + HOUR).toISOString() });
    expect(shorter.expiryCappedBy).toBeUndefined();
    const audit = await s.api('GET', `/api/v1/audit?action=token.create&target=${child.id}`);
    expect(audit.body.items[0].detail).toMatchObject({ parent: tok.ops!.id, expiryCappedBy: tok.ops!.id });
    const standalone = await mint('standalone', { actor: 'bot-prometheus', scopes: ['metrics.read'], expiresIn: '30d' });
    expect(standalone.parent).toBeNull();
  });

  it('revoking the parent revokes every descendant in one go; /auth answers 401 for them at once, despite the cache', async () => {
    await actor('dave', { scopes: ['metrics.read', 'token.issue.service'] });
    const parent = await mint('dave-root', { actor: 'dave', scopes: ['metrics.read', 'token.issue.service'], expiresIn: '2d' });
    const child = await mint('dave-child', { actor: 'bot-prometheus', scopes: ['metrics.read'] }, parent.token);
    const grandchild = await mint('dave-grandchild', { actor: 'bot-prometheus', scopes: ['metrics.read'] }, child.token);
    expect(grandchild.parent).toBe(child.id);
    expect(Date.parse(grandchild.expiresAt)).toBeLessThanOrEqual(Date.parse(parent.expiresAt));
    expect(await auth(child.token)).toBe(200); // now cached
    expect(await auth(grandchild.token)).toBe(200);
    const res = await s.api('DELETE', `/api/v1/tokens/${parent.id}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(await auth(child.token)).toBe(401);
    expect(await auth(grandchild.token)).toBe(401);
    for (const id of [child.id, grandchild.id]) {
      expect((await s.api('GET', `/api/v1/tokens/${id}`)).body).toMatchObject({ state: 'revoked', revokeReason: 'its parent token was revoked' });
    }
    const audit = await s.api('GET', `/api/v1/audit?action=token.revoke&target=${parent.id}`);
    expect(audit.body.items[0].detail.descendants.sort()).toEqual([child.id, grandchild.id].sort());
  });

  it('a token replacing itself keeps its place in the lineage; replace with grace brings descendants forward with it', async () => {
    const child = await mint('self-child', { actor: 'bot-prometheus', scopes: ['metrics.read'], expiresIn: '1d' }, tok.ops!.token);
    const renewed = await s.api('POST', `/api/v1/tokens/${child.id}/replace`, {}, child.token);
    expect(renewed.status, JSON.stringify(renewed.body)).toBe(201);
    expect(renewed.body.parent).toBe(tok.ops!.id);
    await actor('erin', { scopes: ['metrics.read'] });
    const root = await mint('erin-root', { actor: 'erin', scopes: ['metrics.read'], expiresIn: '10d' });
    const below = await mint('erin-below', { actor: 'erin', scopes: ['metrics.read'], expiresIn: '5d' }, root.token);
    const rep = await s.api('POST', `/api/v1/tokens/${root.id}/replace`, { grace: '10m' });
    expect(rep.status).toBe(201);
    expect(rep.body.parent).toBeNull(); // the admin replaced it: it stands alone
    expect((await s.api('GET', `/api/v1/tokens/${below.id}`)).body.expiresAt).toBe(new Date(clock.now() + 10 * 60_000).toISOString());
  });
});

describe('the hand revoke is guarded', () => {
  it('a token a binding delivers: 409 naming the binding; forced, revoked and 401 at once', async () => {
    const held = (await s.api('GET', '/api/v1/bindings/held')).body;
    const token = rememberSecret(readFileSync(join(dir, 'held.token'), 'utf8').trim());
    expect(await auth(token)).toBe(200);
    for (const [method, path] of [
      ['POST', `/api/v1/tokens/${held.tokenId}/revoke`],
      ['DELETE', `/api/v1/tokens/${held.tokenId}`],
    ] as const) {
      const res = await s.api(method, path, method === 'POST' ? { reason: 'by hand' } : undefined);
      expect(res.status).toBe(409);
      expect(res.body.field).toBe('force');
      expect(res.body.detail).toBe(
        `token ${held.tokenId} is delivered by binding held; revoking it breaks its consumer until the binding heals — use \`tokenwarden binding rotate held\`, or repeat with --force (API: "force": true)`,
      );
    }
    expect((await s.api('GET', `/api/v1/tokens/${held.tokenId}`)).body.state).toBe('active');
    expect(await auth(token)).toBe(200);
    const forced = await s.api('DELETE', `/api/v1/tokens/${held.tokenId}?force=true`);
    expect(forced.status, JSON.stringify(forced.body)).toBe(200);
    expect(forced.body.state).toBe('revoked');
    expect(await auth(token)).toBe(401);
    const audit = await s.api('GET', `/api/v1/audit?action=token.revoke&target=${held.tokenId}`);
    expect(audit.body.items[0].detail).toMatchObject({ forced: true });
  });

  it('the token the caller is signed in with: 409, then with force: true 200', async () => {
    const own = await mint('own', { actor: 'carol', scopes: ['metrics.read'], expiresIn: '1d' });
    const res = await s.api('POST', `/api/v1/tokens/${own.id}/revoke`, {}, own.token);
    expect(res.status).toBe(409);
    expect(res.body.detail).toContain('is the token you are signed in with');
    expect(await auth(own.token)).toBe(200);
    const forced = await s.api('POST', `/api/v1/tokens/${own.id}/revoke`, { force: true }, own.token);
    expect(forced.status).toBe(200);
    expect(await auth(own.token)).toBe(401);
  });
});

/** A small seeded PRNG (mulberry32): the same cases on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('property: whatever is issued, the policy allows (seeded random callers and requests)', () => {
  const UNIVERSE = ['metrics.read', 'audit.read', 'binding.read', 'binding.manage', 'admin:token', 'token.issue.service'];
  const LIFETIMES = [HOUR, 10 * DAY, 29 * DAY, 31 * DAY];
  const rand = prng(1337);
  const pick = <T,>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const subset = (xs: readonly string[], p = 0.4) => xs.filter(() => rand() < p);

  it('API-free entry points (createToken, replaceToken, BindingService.validate) over 300 cases', async () => {
    const a = s.tw.ctx.authority;
    const bindings = s.tw.ctx.bindings!;
    const store = s.tw.ctx.store;
    const pool = ['admin', 'bot-prometheus', 'bot-auditor', 'ops'];
    const grantsOf = async (name: string) => store.scopesOfActor((await store.findActorByName(name))!.id);
    const outcomes = { issued: 0, refused: 0 };
    for (let i = 0; i < 300; i++) {
      const callerName = rand() < 0.5 ? `p-user-${i}` : `bot-p-${i}`;
      const grants = subset(UNIVERSE, 0.5);
      if (!grants.length) grants.push('metrics.read');
      await a.createActor(SYSTEM_PRINCIPAL, { name: callerName, kind: callerName.startsWith('bot-') ? 'service' : 'user', scopes: grants });
      const tokenScopes = subset(grants, 0.7);
      if (!tokenScopes.length) tokenScopes.push(grants[0]!);
      const callerToken = await a.createToken(SYSTEM_PRINCIPAL, { actor: callerName, name: 'caller', scopes: tokenScopes, lifetimeMs: pick(LIFETIMES.slice(0, 3)) });
      const caller = (await store.findActorByName(callerName))!;
      const p: Principal = { actorId: caller.id, actorName: callerName, tokenId: callerToken.token.id, scopes: tokenScopes };
      const targetName = rand() < 0.3 ? callerName : pick(pool);
      const target = (await store.findActorByName(targetName))!;
      const lifetimeMs = pick(LIFETIMES);
      const entry = pick(['create', 'replace', 'binding'] as const);
      let scopes = subset(UNIVERSE.slice(0, 4), 0.5);
      if (!scopes.length) scopes = ['metrics.read'];
      let oldId: string | null = null;
      if (entry === 'replace') {
        // The token replaced: one of the target's, with scopes it is granted (minted by the system).
        const granted = await grantsOf(targetName);
        scopes = scopes.filter((x) => granted.includes(x));
        if (!scopes.length) scopes = [granted[0]!];
        oldId = (await a.createToken(SYSTEM_PRINCIPAL, { actor: targetName, name: `old-${i}`, scopes, lifetimeMs: HOUR })).token.id;
      }
      // The model: the rules written out once more, independently of the code under test.
      const admin = tokenScopes.includes('admin:token');
      const targetGrants = await grantsOf(targetName);
      const identityOk = target.id === caller.id || admin || (tokenScopes.includes('token.issue.service') && target.kind === 'service');
      const allowed = identityOk && scopes.every((x) => targetGrants.includes(x)) && (admin || scopes.every((x) => tokenScopes.includes(x))) && lifetimeMs <= 30 * DAY;
      const before = await tokenCount();
      let issued: { token: { id: string } } | 'valid' | null = null;
      let refusal: unknown = null;
      try {
        if (entry === 'create') issued = await a.createToken(p, { actor: targetName, name: `t-${i}`, scopes, lifetimeMs });
        else if (entry === 'replace') issued = await a.replaceToken(p, oldId!, { lifetimeMs });
        else {
          await bindings.validate(p, bindingSpec(`prop-${i}`, targetName, scopes, `${lifetimeMs / 1000}s`) as never);
          issued = 'valid';
        }
      } catch (err) {
        refusal = err;
      }
      const what = JSON.stringify({ i, entry, callerName, grants, tokenScopes, targetName, scopes, lifetimeMs, refusal: (refusal as Error | null)?.message });
      expect(issued !== null, what).toBe(allowed);
      if (refusal) {
        expect(refusal, what).toBeInstanceOf(Problem);
        expect((refusal as Problem).status, what).toBeGreaterThanOrEqual(400);
        expect((refusal as Problem).status, what).toBeLessThan(500);
        expect(await tokenCount(), what).toBe(before);
        outcomes.refused++;
        continue;
      }
      outcomes.issued++;
      if (issued === 'valid' || issued === null) continue;
      const row = (await store.findToken(issued.token.id))!;
      const rowScopes = JSON.parse(row.scopes) as string[];
      expect(row.actor_id, what).toBe(target.id);
      expect(rowScopes.every((x) => targetGrants.includes(x)), what).toBe(true);
      if (!admin) expect(rowScopes.every((x) => tokenScopes.includes(x)), what).toBe(true);
      expect(row.expires_at - clock.now(), what).toBeLessThanOrEqual(30 * DAY);
      if (admin) expect(row.parent, what).toBeNull();
      else {
        expect(row.parent, what).toBe(callerToken.token.id);
        expect(row.expires_at, what).toBeLessThanOrEqual(Date.parse(callerToken.token.expiresAt));
      }
    }
    // Both outcomes are exercised, or the property says nothing.
    expect(outcomes.issued).toBeGreaterThan(20);
    expect(outcomes.refused).toBeGreaterThan(20);
  }, 120_000);
});

describe('bootstrap lifetime and tokenwarden admin recover (real SQLite data dir, the built CLI)', () => {
  it('the first admin token lives 24 h by default (tokens.bootstrapLifetime, TOKENWARDEN_BOOTSTRAP_LIFETIME), never beyond the maximum', async () => {
    const { ConfigError, loadConfig } = await import('../src/config/server-config.js');
    expect(loadConfig({ env: {} }).durations.bootstrapLifetimeMs).toBe(DAY);
    expect(loadConfig({ env: { TOKENWARDEN_BOOTSTRAP_LIFETIME: '2h' } }).durations.bootstrapLifetimeMs).toBe(2 * HOUR);
    expect(loadConfig({ env: { TOKENWARDEN_MAX_TOKEN_LIFETIME: '1h', TOKENWARDEN_DEFAULT_TOKEN_LIFETIME: '1h' } }).durations.bootstrapLifetimeMs).toBe(HOUR);
    expect(() => loadConfig({ env: { TOKENWARDEN_BOOTSTRAP_LIFETIME: '400d' } })).toThrow(ConfigError);
    const own = await startTestServer({ config: { tokens: { bootstrapLifetime: '24h' } } });
    try {
      const me = (await own.api('GET', `/api/v1/tokens/${own.adminToken.slice(4, 16)}`)).body;
      expect(Date.parse(me.expiresAt) - Date.parse(me.createdAt)).toBe(DAY);
    } finally {
      await own.close();
    }
  });

  it('re-enables admin, prints a 1 h admin token once that works against the running server, audited without the secret', async () => {
    const { runCli } = await import('./support/cli.js');
    const data = tempDir('recover');
    const own = await startTestServer({ dbPath: join(data, 'tokenwarden.db') });
    try {
      // A second admin disables "admin": its token stops working.
      await own.api('POST', '/api/v1/actors', { name: 'root2', kind: 'user', roles: ['admin'] });
      const other = await own.api('POST', '/api/v1/tokens', { actor: 'root2', name: 'x', scopes: ['actor.manage'] });
      expect((await own.api('PATCH', '/api/v1/actors/admin', { disabled: true }, other.body.token)).status).toBe(200);
      expect((await own.api('GET', '/api/v1/whoami')).status).toBe(401);

      const bad = await runCli(['admin', 'recover', '--data-dir', data, '--expires-in', '400d']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--expires-in: the lifetime is beyond the maximum token lifetime of 365 days');
      expect(bad.stdout).toBe('');
      const missing = await runCli(['admin', 'recover', '--data-dir', join(data, 'nope')]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('no tokenwarden store at');
      expect(existsSync(join(data, 'nope'))).toBe(false);

      const r = await runCli(['admin', 'recover', '--data-dir', data]);
      expect(r.code, r.stderr).toBe(0);
      const token = rememberSecret(r.stdout.trim());
      expect(r.stdout.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain('(re-enabled)');
      const who = await own.api('GET', '/api/v1/whoami', undefined, token);
      expect(who.status, JSON.stringify(who.body)).toBe(200);
      expect(who.body.actor).toBe('admin');
      const view = (await own.api('GET', `/api/v1/tokens/${token.slice(4, 16)}`, undefined, token)).body;
      expect(Date.parse(view.expiresAt) - Date.parse(view.createdAt)).toBe(HOUR);
      expect(view.parent).toBeNull();
      const audit = (await own.api('GET', '/api/v1/audit?action=system.recover', undefined, token)).body.items;
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({ targetId: 'admin', detail: { tokenId: view.id, actorEnabled: true, actorCreated: false } });
      expect(JSON.stringify(audit)).not.toContain(token.slice(17));
      // The CLI shows the lineage column.
      const show = await runCli(['token', 'show', view.id], { TOKENWARDEN_SERVER: own.url, TOKENWARDEN_TOKEN: token });
      expect(show.stdout.split('\n')[0]).toMatch(/PARENT/);
    } finally {
      await own.close();
    }
  }, 60_000);
});
