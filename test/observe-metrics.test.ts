import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_PRINCIPAL } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import { TOKEN_PATTERN } from '../src/token/format.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

const DAY = 86_400_000;
const clock = new ManualClock(Date.UTC(2026, 0, 1));
const sinkRoot = tempDir('observe-binding');
let s: TestServer;
let scrapeToken: string;

/** The exposition lines of one metric family, without HELP/TYPE, sorted. */
function series(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .sort();
}

async function scrape(): Promise<string> {
  const res = await s.api('GET', '/metrics', undefined, scrapeToken);
  expect(res.status).toBe(200);
  return res.body as string;
}

beforeAll(async () => {
  s = await startTestServer({ clock, config: { verify: { failureLimit: 1000 }, delivery: { fileRoots: [sinkRoot] } } });
});
afterAll(async () => s?.close());

describe('metrics on the gated /metrics', () => {
  it('exposes seconds until expiry per live token, with managed=true only for bound tokens, and tokens by state', async () => {
    const a = s.tw.ctx.authority;
    await s.api('POST', '/api/v1/actors', { name: 'bot-prom', kind: 'service', roles: ['metrics-read'] });
    const scrapeTok = await a.createToken(SYSTEM_PRINCIPAL, { actor: 'bot-prom', name: 'scrape', scopes: ['metrics.read'], lifetimeMs: 30 * DAY });
    scrapeToken = rememberSecret(scrapeTok.plaintext);
    const bound = await a.createToken(SYSTEM_PRINCIPAL, { actor: 'bot-prom', name: 'delivered', scopes: ['metrics.read'], lifetimeMs: 2 * DAY, bindingId: 'b-1' });
    rememberSecret(bound.plaintext);
    const soon = await a.createToken(SYSTEM_PRINCIPAL, { actor: 'bot-prom', name: 'hand-made', scopes: ['metrics.read'], lifetimeMs: 3 * DAY + 1500 });
    rememberSecret(soon.plaintext);
    const gone = await a.createToken(SYSTEM_PRINCIPAL, { actor: 'bot-prom', name: 'old', scopes: ['metrics.read'], lifetimeMs: DAY });
    rememberSecret(gone.plaintext);
    await a.revokeToken(SYSTEM_PRINCIPAL, gone.token.id, 'test');
    const short = await a.createToken(SYSTEM_PRINCIPAL, { actor: 'bot-prom', name: 'short', scopes: ['metrics.read'], lifetimeMs: 60_000 });
    rememberSecret(short.plaintext);
    clock.advance(120_000); // `short` is now expired

    const bootstrapId = s.adminToken.slice(4, 16);
    const text = await scrape();
    expect(series(text, 'tokenwarden_token_expires_in_seconds')).toEqual(
      [
        `tokenwarden_token_expires_in_seconds{token_id="${bootstrapId}",token_name="bootstrap",actor="admin",managed="false"} ${365 * 86400 - 120}`,
        `tokenwarden_token_expires_in_seconds{token_id="${scrapeTok.token.id}",token_name="scrape",actor="bot-prom",managed="false"} ${30 * 86400 - 120}`,
        `tokenwarden_token_expires_in_seconds{token_id="${bound.token.id}",token_name="delivered",actor="bot-prom",managed="true"} ${2 * 86400 - 120}`,
        `tokenwarden_token_expires_in_seconds{token_id="${soon.token.id}",token_name="hand-made",actor="bot-prom",managed="false"} ${3 * 86400 - 119}`,
      ].sort(),
    );
    expect(series(text, 'tokenwarden_token_expiry_timestamp_seconds')).toContain(
      `tokenwarden_token_expiry_timestamp_seconds{token_id="${bound.token.id}",token_name="delivered",actor="bot-prom",managed="true"} ${(Date.UTC(2026, 0, 1) + 2 * DAY) / 1000}`,
    );
    // The whole lifetime, for alerts relative to it (issue 15): unchanged as the token ages.
    expect(series(text, 'tokenwarden_token_lifetime_seconds')).toEqual(
      expect.arrayContaining([
        `tokenwarden_token_lifetime_seconds{token_id="${scrapeTok.token.id}",token_name="scrape",actor="bot-prom",managed="false"} ${30 * 86400}`,
        `tokenwarden_token_lifetime_seconds{token_id="${soon.token.id}",token_name="hand-made",actor="bot-prom",managed="false"} ${3 * 86400 + 2}`,
      ]),
    );
    expect(series(text, 'tokenwarden_token_lifetime_seconds')).toHaveLength(4);
    expect(series(text, 'tokenwarden_tokens')).toEqual(
      ['tokenwarden_tokens{state="active"} 4', 'tokenwarden_tokens{state="expired"} 1', 'tokenwarden_tokens{state="revoked"} 1'].sort(),
    );
    // never a secret, nor anything of one
    for (const t of [scrapeToken, bound.plaintext, soon.plaintext]) expect(text).not.toContain(t.slice(17, 40));

    // a revoked token leaves the per-token gauges at the next scrape
    await a.revokeToken(SYSTEM_PRINCIPAL, soon.token.id);
    const after = await scrape();
    expect(after).not.toContain(soon.token.id);
    expect(series(after, 'tokenwarden_tokens')).toContain('tokenwarden_tokens{state="revoked"} 2');
  });

  it('derives seconds until expiry per binding from the expiry the controller publishes', async () => {
    const m = s.tw.ctx.metrics;
    m.bindingExpiry.set({ binding: 'prometheus-scrape' }, (clock.now() + 5 * DAY) / 1000);
    const text = await scrape();
    expect(series(text, 'tokenwarden_binding_token_expires_in_seconds')).toEqual([
      `tokenwarden_binding_token_expires_in_seconds{binding="prometheus-scrape"} ${5 * 86400}`,
    ]);
    m.bindingExpiry.remove({ binding: 'prometheus-scrape' });
    expect(series(await scrape(), 'tokenwarden_binding_token_expires_in_seconds')).toEqual([]);
  });

  it('publishes per binding when its token was issued and when its next rotation is due (the schedule alerts are relative to)', async () => {
    const dir = sinkRoot;
    await s.api('POST', '/api/v1/actors', { name: 'bot-sched', kind: 'service', roles: ['metrics-read'] });
    const issuedAt = clock.now();
    const created = await s.api('POST', '/api/v1/bindings', {
      name: 'sched',
      actor: 'bot-sched',
      scopes: ['metrics.read'],
      lifetime: '30m',
      sinks: [{ kind: 'file', path: join(dir, 'sched.token') }],
      rotation: { confirm: 'none', jitter: 0 },
    });
    expect(created.status).toBe(201);
    await s.tw.ctx.delivery!.tick();
    clock.advance(11_000); // the controller refreshes binding gauges at most every 10 s
    await s.tw.ctx.delivery!.tick();
    const text = await scrape();
    expect(series(text, 'tokenwarden_binding_token_issued_timestamp_seconds')).toEqual([`tokenwarden_binding_token_issued_timestamp_seconds{binding="sched"} ${issuedAt / 1000}`]);
    expect(series(text, 'tokenwarden_binding_token_expiry_timestamp_seconds')).toEqual([`tokenwarden_binding_token_expiry_timestamp_seconds{binding="sched"} ${issuedAt / 1000 + 1800}`]);
    expect(series(text, 'tokenwarden_binding_next_rotation_timestamp_seconds')).toEqual([
      `tokenwarden_binding_next_rotation_timestamp_seconds{binding="sched"} ${(issuedAt + Math.round(1800_000 * 0.66)) / 1000}`,
    ]);
  });

  it('counts verifications by result, every result present from the start', async () => {
    const { token } = await mintFor(s, 'bot-reader', ['token.introspect']);
    const before = series(await scrape(), 'tokenwarden_verifications_total');
    expect(before.map((l) => /result="([a-z_]+)"/.exec(l)![1]).sort()).toEqual(
      ['disabled', 'expired', 'insufficient_scope', 'malformed', 'missing', 'ok', 'rate_limited', 'revoked', 'unknown'],
    );
    const count = (lines: string[], result: string) => Number(lines.find((l) => l.includes(`result="${result}"`))!.split(' ')[1]);
    await fetch(`${s.url}/auth?scope=metrics.read`, { headers: { authorization: `Bearer ${token}` } });
    await fetch(`${s.url}/auth`, { headers: { authorization: 'Bearer twd_nonsense' } });
    const after = series(await scrape(), 'tokenwarden_verifications_total');
    expect(count(after, 'insufficient_scope') - count(before, 'insufficient_scope')).toBe(1);
    expect(count(after, 'malformed') - count(before, 'malformed')).toBe(1);
  });

  it('has HELP text for every tokenwarden metric and only bounded labels', async () => {
    const text = await scrape();
    const names = [...text.matchAll(/^# TYPE (tokenwarden_\S+)/gm)].map((m) => m[1]);
    expect(names).toEqual(
      expect.arrayContaining([
        'tokenwarden_rotations_total',
        'tokenwarden_source_refresh_failures_total',
        'tokenwarden_sink_errors_total',
        'tokenwarden_sink_drift_total',
        'tokenwarden_binding_last_success_timestamp_seconds',
        'tokenwarden_binding_healthy',
        'tokenwarden_notifications_total',
      ]),
    );
    // Label names that could carry a credential are not allowed; the public token id and name are.
    const labelNames = new Set([...text.matchAll(/[{,]([a-z_]+)="/g)].map((m) => m[1]));
    expect([...labelNames].filter((l) => /secret|password|token|key|hash/.test(l) && l !== 'token_id' && l !== 'token_name')).toEqual([]);
    expect(text).not.toMatch(TOKEN_PATTERN);
  });
});
