import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { requirementOf } from '../src/forward-auth/handler.js';
import { decide, decideCached } from '../src/verify/decision.js';
import type { Verifier } from '../src/verify/verifier.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

const clock = new ManualClock(Date.now());
let s: TestServer;
let verifier: Verifier;
let token: string;
let id: string;
const src = { ip: '10.1.2.3', userAgent: 'test' };
beforeAll(async () => {
  s = await startTestServer({ clock, config: { verify: { cacheTtl: '10s', negativeCacheTtl: '30s', failureLimit: 3 } } });
  verifier = s.tw.ctx.verifier;
  ({ token, id } = await mintFor(s, 'bot-cache', ['metrics.read'], { expiresIn: '1h' }));
});
afterAll(async () => s.close());

describe('verification caches', () => {
  it('answers a cached token synchronously, with the same objects each time (no per-request allocation)', async () => {
    expect(verifier.verifyCached(token, src)).toBeUndefined(); // not cached yet: the store must be asked
    const first = await verifier.verify(token, src);
    expect(first.ok).toBe(true);
    const again = verifier.verifyCached(token, src);
    expect(again).toBe(first);
    const req = requirementOf('/auth?scope=metrics.read');
    expect(requirementOf('/auth?scope=metrics.read')).toBe(req);
    const d1 = decideCached(verifier, token, src, req);
    expect(d1).toMatchObject({ status: 200 });
    expect(decideCached(verifier, token, src, req)).toBe(d1);
    expect(decideCached(verifier, token, src, requirementOf('/auth?scope=admin:token'))).toMatchObject({ status: 403, error: 'insufficient_scope' });
  });

  it('answers from the cache only for the very same token: any changed character is refused', async () => {
    expect((await verifier.verify(token, src)).ok).toBe(true); // cached
    for (let i = 4; i < token.length; i++) {
      const c = token[i] === 'a' ? 'b' : 'a';
      const changed = token.slice(0, i) + c + token.slice(i + 1);
      // One source per attempt, so the failure limit (3) does not answer in the checksum's place.
      const v = await verifier.verify(changed, { ip: `10.4.4.${i}`, userAgent: null });
      expect([i, v.ok ? 'accepted' : v.reason]).toEqual([i, 'malformed']);
    }
    expect(verifier.verifyCached(token, src)).toMatchObject({ ok: true });
  });

  it('trusts the cache no longer than its TTL, and never past the token expiry', async () => {
    clock.advance(10_001);
    expect(verifier.verifyCached(token, src)).toBeUndefined();
    expect((await verifier.verify(token, src)).ok).toBe(true);
    clock.advance(3_600_000);
    expect(await verifier.verify(token, src)).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('rejects malformed tokens without I/O and remembers unknown ids; refusals are shared constants', async () => {
    const garbage = verifier.verifyCached('twd_garbage', { ip: '10.9.9.9', userAgent: null });
    expect(garbage).toMatchObject({ ok: false, reason: 'malformed' });
    expect(verifier.verifyCached('twd_other', { ip: '10.9.9.8', userAgent: null })).toBe(garbage);
    const forged = `twd_${'A'.repeat(12)}_${token.slice(17)}`; // right shape, wrong checksum
    expect(verifier.verifyCached(forged, { ip: '10.9.9.7', userAgent: null })).toMatchObject({ reason: 'malformed' });
    expect(await decide(verifier, undefined, src, requirementOf('/auth'))).toMatchObject({ status: 401, error: '' });
  });

  it('limits failures per source: 429 after the limit, other sources unaffected, until the window ends', async () => {
    const bad = { ip: '10.7.7.7', userAgent: null };
    for (let i = 0; i < 3; i++) expect(verifier.verifyCached('twd_x', bad)).toMatchObject({ reason: 'malformed' });
    expect(decideCached(verifier, 'twd_x', bad, requirementOf('/auth'))).toMatchObject({ status: 429 });
    const { token: fresh } = await mintFor(s, 'bot-cache', ['metrics.read']);
    expect((await decide(verifier, fresh, bad, requirementOf('/auth'))).status).toBe(429);
    expect((await decide(verifier, fresh, src, requirementOf('/auth'))).status).toBe(200);
    clock.advance(60_001);
    expect((await decide(verifier, fresh, bad, requirementOf('/auth'))).status).toBe(200);
  });

  it('drops a revoked token from the cache at once on the revoking server', async () => {
    const { token: t, id: tid } = await mintFor(s, 'bot-cache', ['metrics.read']);
    expect((await verifier.verify(t, src)).ok).toBe(true);
    expect((await s.api('POST', `/api/v1/tokens/${tid}/revoke`, {})).status).toBe(200);
    expect(verifier.verifyCached(t, src)?.ok).not.toBe(true);
    expect(await verifier.verify(t, src)).toMatchObject({ ok: false, reason: 'revoked' });
    expect(verifier.verifyCached(t, src)).toMatchObject({ ok: false, reason: 'revoked' }); // negative cache
    expect(id).toBeTruthy();
  });
});
