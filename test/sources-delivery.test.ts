import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { DeliveryController } from '../src/delivery/controller.js';
import { upstreamTokenId } from '../src/token/format.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, startTestServer } from './support/server.js';
import { FakeUpstream } from './support/upstream.js';

/**
 * Sources inside the server: a binding with `source:` delivers the upstream's token through the
 * delivery controller (rotation state machine, file sink), on a real SQLite file, time moved by hand.
 */
const clock = new ManualClock(Date.UTC(2026, 0, 1, 8));
let s: TestServer;
let ctl: DeliveryController;
let up: FakeUpstream;
let dir: string;
const MIN = 60_000;

const binding = async (name: string) => (await s.api('GET', `/api/v1/bindings/${name}`)).body;
const fileToken = (name: string) => rememberSecret(readFileSync(join(dir, `${name}.token`), 'utf8').trim());

function spec(name: string, source: Record<string, unknown>) {
  // actor/scopes/lifetime are required by the binding schema; a source binding does not mint, so they are not used.
  return { name, actor: 'upstream', scopes: ['upstream'], lifetime: '1h', sinks: [{ kind: 'file', path: join(dir, `${name}.token`) }], rotation: { at: 0.5, jitter: 0, grace: '1s', confirm: 'none' }, source };
}

const cpd = (extra: Record<string, unknown> = {}) => ({
  kind: 'http-login',
  url: `${up.url}/icp4d-api/v1/authorize`,
  body: { username: { env: 'TW_TEST_CPD_USERNAME' }, password: { file: join(dir, 'password') } },
  tokenPath: '.token',
  timeout: '2s',
  ...extra,
});

async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await ctl.tick();
    clock.advance(1500);
  }
}

beforeAll(async () => {
  up = await FakeUpstream.start({ now: () => clock.now(), lifetimeSeconds: 20 * 60 });
  dir = tempDir('sources-delivery');
  writeFileSync(join(dir, 'password'), `${up.password}\n`, { mode: 0o600 });
  process.env.TW_TEST_CPD_USERNAME = up.username;
  process.env.TW_TEST_CLIENT_SECRET = up.clientSecret;
  s = await startTestServer({ clock, config: { delivery: { fileRoots: [dir] } }, delivery: { autoStart: false, retryBaseMs: 1000, retryMaxMs: 10_000, pollMs: 1000 } });
  ctl = s.tw.ctx.delivery!;
});
afterAll(async () => {
  await s?.close();
  await up?.close();
});

describe('bindings with a source (seed 000 through the server)', () => {
  let first: string;

  it('delivers the upstream token to the file; expiry from the JWT; the binding is healthy; the view shows only the kind', async () => {
    const res = await s.api('POST', '/api/v1/bindings', spec('cpd', cpd()));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await settle(1);
    first = fileToken('cpd');
    expect(await up.accepts(first)).toBe(true);
    const b = await binding('cpd');
    expect(b).toMatchObject({ healthy: true, source: { kind: 'http-login' }, tokenId: upstreamTokenId(first) });
    expect(b.tokenId).toMatch(/^up_[\w-]{12}$/);
    expect(Date.parse(b.expiresAt)).toBe(Math.floor((clock.now() - 1500) / 1000) * 1000 + 20 * MIN);
    expect(JSON.stringify(b)).not.toContain('password');
  });

  it('an upstream outage: the file keeps the last good token, the binding turns unhealthy with a clean error, failures are counted', async () => {
    clock.advance(10 * MIN);
    up.mode = '500';
    await settle(3);
    expect(fileToken('cpd')).toBe(first);
    const b = await binding('cpd');
    expect(b.healthy).toBe(false);
    expect(b.lastError).toMatch(/answered 500: the upstream failed/);
    expect(b.lastError).not.toContain('echo');
    const metrics = await s.tw.ctx.metrics.registry.metrics();
    expect(metrics).toMatch(/tokenwarden_source_refresh_failures_total\{binding="cpd",source="http-login"\} [1-9]/);

    up.mode = 'ok';
    clock.advance(15_000);
    await settle(4);
    const second = fileToken('cpd');
    expect(second).not.toBe(first);
    expect(await up.accepts(second)).toBe(true);
    expect((await binding('cpd')).healthy).toBe(true);
  });

  it('refuses a literal secret in a source, naming the field and not the value', async () => {
    const res = await s.api('POST', '/api/v1/bindings', spec('literal', cpd({ body: { username: 'svc', password: 'hunter2-literal' } })));
    expect(res.status).toBe(400);
    expect(res.body.field).toBe('source.body.password');
    expect(JSON.stringify(res.body)).not.toContain('hunter2');
  });

  it('oauth2-refresh-token: the rotated refresh token is kept in the store, sealed', async () => {
    const rt = up.newRefreshToken();
    process.env.TW_TEST_RT = rt;
    const res = await s.api(
      'POST',
      '/api/v1/bindings',
      spec('oauth', { kind: 'oauth2-refresh-token', tokenUrl: `${up.url}/oauth/token`, clientId: up.clientId, clientSecret: { env: 'TW_TEST_CLIENT_SECRET' }, refreshToken: { env: 'TW_TEST_RT' } }),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await settle(1);
    expect(await up.accepts(fileToken('oauth'))).toBe(true);
    clock.advance(11 * MIN);
    await settle(3);
    expect(await up.accepts(fileToken('oauth'))).toBe(true); // needed the rotated refresh token
    const rows = await (s.tw.ctx.store.kysely as any).selectFrom('source_state').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0].key).toBe('binding:oauth');
    expect(rows[0].value).toMatch(/^v1\./);
    expect(rows[0].value).not.toMatch(/rt-/);
  });
});
