import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/wait.js';
import { ManualClock } from '../src/clock.js';
import type { Sink } from '../src/delivery/sinks/sink.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/observe/metrics.js';
import { type HttpSourceConfig, checkHttpSource } from '../src/sources/source-config.js';
import { expiryOf } from '../src/sources/expiry.js';
import { createHttpSource } from '../src/sources/factory.js';
import { SourceRefresher } from '../src/delivery/refresh/refresher.js';
import { nextRefreshAt, retryDelay } from '../src/delivery/refresh/refresh-schedule.js';
import { MemoryStateStore, SealingKey, sealedSlot } from '../src/sources/sealed-state.js';
import { UpstreamError } from '../src/sources/upstream-http.js';
import { LOG_DIR, tempDir } from './support/output.js';
import { FakeUpstream } from './support/upstream.js';

/** Sinks are the delivery module's; the refresher only needs the interface, so a memory one suffices here. */
class MemorySink implements Sink {
  readonly describe = 'memory:test';
  value: string | null = null;
  writes = 0;
  async write(token: string) {
    const changed = token !== this.value;
    if (changed) this.writes++;
    this.value = token;
    return { changed };
  }
  async read() {
    return this.value;
  }
  async remove() {
    this.value = null;
  }
  watch() {
    return () => undefined; // nothing changes a memory sink behind the test's back
  }
}

const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
const logFile = join(LOG_DIR, `sources-http-${process.pid}.log`);
const stream = createWriteStream(logFile);
const logger = createLogger({ level: 'debug', stream });
let up: FakeUpstream;
let dir: string;
let env: NodeJS.ProcessEnv;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  up = await FakeUpstream.start({ now: () => clock.now(), lifetimeSeconds: 600, tls: true });
  dir = tempDir('sources');
  writeFileSync(join(dir, 'password'), `${up.password}\n`, { mode: 0o600 });
  env = { CPD_USERNAME: up.username, CLIENT_SECRET: up.clientSecret, CPD_API_KEY: up.apiKey };
});
afterAll(async () => {
  for (const c of closers) await c();
  await up?.close();
  await new Promise((r) => stream.end(r));
});

function source(config: Record<string, unknown>, state = {}) {
  const problems = checkHttpSource(config, 'source');
  if (problems.length) throw new Error(problems.join('\n'));
  const s = createHttpSource(config as HttpSourceConfig, { clock, logger, env }, state);
  closers.push(async () => s.close?.());
  return s;
}

const cpd = (extra: Record<string, unknown> = {}) => ({
  kind: 'http-login',
  url: `${up.url}/icp4d-api/v1/authorize`,
  body: { username: { env: 'CPD_USERNAME' }, password: { file: join(dir, 'password') } },
  tokenPath: '.token',
  timeout: '2s',
  ...extra,
});

async function failureOf(promise: Promise<unknown>): Promise<UpstreamError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(UpstreamError);
  const message = (err as Error).message;
  for (const s of [up.password, up.clientSecret, up.apiKey]) expect(message).not.toContain(s);
  return err as UpstreamError;
}

describe('http-login (seed 000: CPD POST /icp4d-api/v1/authorize, token at .token)', () => {
  it('logs in with credentials from an env var and a file, and takes the expiry from the JWT exp', async () => {
    up.mode = 'ok';
    const before = up.issued;
    const got = await source(cpd()).fetch();
    expect(up.issued).toBe(before + 1);
    expect(await up.accepts(got.token)).toBe(true);
    expect(got.expiresAt).toBe(Math.floor(clock.now() / 1000) * 1000 + 600_000);
    expect(up.lastRequest).toMatchObject({ contentType: 'application/json', fields: { username: up.username, password: up.password } });
  });

  it('sends a form body and custom headers; api_key instead of password', async () => {
    const s = source(cpd({ bodyFormat: 'form', body: { username: { env: 'CPD_USERNAME' }, api_key: { env: 'CPD_API_KEY' } }, headers: { 'X-Tenant': 'monitoring' } }));
    expect(await up.accepts((await s.fetch()).token)).toBe(true);
    expect(up.lastRequest).toMatchObject({ contentType: 'application/x-www-form-urlencoded', fields: { api_key: up.apiKey } });
    expect(up.lastRequest!.headers['x-tenant']).toBe('monitoring');
  });

  it('refuses literal secrets in the configuration with a message naming the field, not the value', () => {
    const problems = checkHttpSource({ ...cpd(), body: { username: 'svc', password: 'hunter2-literal' }, headers: { Authorization: 'Basic abc' } }, 'bindings[0].source');
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('bindings[0].source.body.password: a literal secret in the configuration is refused');
    expect(problems[1]).toContain('bindings[0].source.headers.Authorization');
    expect(problems.join()).not.toContain('hunter2');
    expect(checkHttpSource({ kind: 'oauth2-client-credentials', tokenUrl: up.url, clientId: 'x', clientSecret: 's3cret' }, 's')[0]).toContain('s.clientSecret: a literal secret');
    expect(checkHttpSource({ kind: 'ldap', url: up.url }, 's')[0]).toContain('s.kind: must be one of');
    expect(checkHttpSource({ ...cpd(), url: 'ftp://x', extra: 1 }, 's').join('\n')).toMatch(/s\.url: .*pattern[\s\S]*s: Unexpected property|s\.url/);
  });

  it('a missing env var or file is a clear configuration error', async () => {
    const s = source(cpd({ body: { username: { env: 'NOT_SET_ANYWHERE' }, password: { file: '/nonexistent/pw' } } }));
    await expect(s.fetch()).rejects.toThrow('body.username: environment variable NOT_SET_ANYWHERE is not set');
  });

  it.each([
    ['401', 'unauthorized', /answered 401: the upstream refused the credentials; check the credentials in env CPD_USERNAME, file .*password/],
    ['500', 'server', /answered 500: the upstream failed/],
    ['malformed', 'malformed', /answered 200 but the body is not JSON \(text\/html, \d+ bytes\)/],
    ['missing-field', 'missing-field', /no token at \.token in the answer \(top-level fields: _messageCode_, message, accessToken\); set tokenPath/],
    ['hang', 'timeout', /did not answer within 0\.3s/],
  ] as const)('upstream failure %s gives a clear message without the response body', async (mode, reason, message) => {
    up.mode = mode;
    try {
      const err = await failureOf(source(cpd({ timeout: '300ms' })).fetch());
      expect(err.reason).toBe(reason);
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain('echo');
    } finally {
      up.mode = 'ok';
    }
  });

  it('wrong credentials are a 401 with a hint, not an echo', async () => {
    const err = await failureOf(source(cpd({ body: { username: { env: 'CPD_USERNAME' }, password: { env: 'CPD_API_KEY' } } })).fetch());
    expect(err.reason).toBe('unauthorized');
  });

  it('HTTPS: trusts the configured CA, refuses an unknown one, and skips verification only when told (with a warning)', async () => {
    const url = `${up.httpsUrl}/icp4d-api/v1/authorize`;
    expect(await up.accepts((await source(cpd({ url, caFile: up.caFile })).fetch()).token)).toBe(true);
    const err = await failureOf(source(cpd({ url })).fetch());
    expect(err.message).toMatch(/TLS verification failed .*set caFile/);
    expect(await up.accepts((await source(cpd({ url, insecureSkipVerify: true })).fetch()).token)).toBe(true);
    await waitFor(async () => readFileSync(logFile, 'utf8').includes('insecureSkipVerify is set'), 'the insecureSkipVerify warning in the log', 5000, 20);
  });
});

describe('oauth2', () => {
  const cc = (extra: Record<string, unknown> = {}) => ({
    kind: 'oauth2-client-credentials',
    tokenUrl: `${up.url}/oauth/token`,
    clientId: up.clientId,
    clientSecret: { env: 'CLIENT_SECRET' },
    scopes: ['metrics.read', 'openid'],
    audience: 'https://api.example',
    ...extra,
  });

  it('client credentials with client_secret_basic (default) and _post; expiry from exp/expires_in', async () => {
    const basic = await source(cc()).fetch();
    expect(await up.accepts(basic.token)).toBe(true);
    expect(up.lastRequest!.headers.authorization).toMatch(/^Basic /);
    expect(up.lastRequest!.fields).toMatchObject({ grant_type: 'client_credentials', scope: 'metrics.read openid', audience: 'https://api.example' });
    expect(up.lastRequest!.fields.client_secret).toBeUndefined();
    const post = await source(cc({ authMethod: 'client_secret_post' })).fetch();
    expect(await up.accepts(post.token)).toBe(true);
    expect(up.lastRequest!.headers.authorization).toBeUndefined();
    expect(up.lastRequest!.fields.client_secret).toBe(up.clientSecret);
    expect(post.expiresAt).toBe(clock.now() + 600_000);
  });

  it('a wrong client secret is reported without the secret', async () => {
    const err = await failureOf(source(cc({ clientSecret: { env: 'CPD_API_KEY' } })).fetch());
    expect(err.message).toMatch(/answered 401.*check the credentials in env CPD_API_KEY/);
  });

  it('refresh token: keeps the rotated one sealed, so a restart continues the chain', async () => {
    const first = up.newRefreshToken();
    env.RT = first;
    const key = SealingKey.fromBytes(Buffer.alloc(32, 7));
    const store = new MemoryStateStore();
    const config = { kind: 'oauth2-refresh-token', tokenUrl: `${up.url}/oauth/token`, clientId: up.clientId, clientSecret: { env: 'CLIENT_SECRET' }, refreshToken: { env: 'RT' } };
    const a = source(config, { slot: sealedSlot(store, key, 'binding-a') });
    expect(await up.accepts((await a.fetch()).token)).toBe(true);
    expect(await up.accepts((await a.fetch()).token)).toBe(true); // used the rotated one: the first is dead by now
    const sealed = store.values.get('binding-a')!;
    expect(sealed).toMatch(/^v1\./);
    expect(sealed).not.toMatch(/rt-/);
    // "restart": a new source over the same state continues with the newest refresh token
    const b = source(config, { slot: sealedSlot(store, key, 'binding-a') });
    expect(await up.accepts((await b.fetch()).token)).toBe(true);
    // without the state the configured (already used) token is refused, with advice
    const c = source(config, { slot: sealedSlot(new MemoryStateStore(), key, 'binding-a') });
    const err = await failureOf(c.fetch());
    expect(err.message).toMatch(/answered 400 \(invalid_grant\).*put a fresh refresh token/);
    expect(err.message).not.toContain(first);
    // the operator puts a new one in place: it wins over the saved chain
    env.RT = up.newRefreshToken();
    expect(await up.accepts((await b.fetch()).token)).toBe(true);
    // a sealed value is bound to its binding and key
    expect(() => key.open(sealed, 'binding-b')).toThrow('cannot be opened');
    expect(() => createHttpSource(config as HttpSourceConfig, { clock, logger, env })).toThrow('state key');
  });
});

describe('expiry and schedule', () => {
  it('takes the earliest of JWT exp, expires_in and the configured lifetime; refuses not knowing', () => {
    const now = 1_000_000;
    expect(expiryOf('opaque', { now, expiresIn: 60, where: 'w' })).toBe(now + 60_000);
    expect(expiryOf('opaque', { now, expiresIn: '60', lifetimeMs: 30_000, where: 'w' })).toBe(now + 30_000);
    expect(() => expiryOf('opaque', { now, where: 'w' })).toThrow('set lifetime');
  });

  it('refreshes at the configured fraction with bounded jitter, backs off exponentially but not past the last good token', () => {
    const policy = { at: 0.6, jitter: 0.1, retryInitialMs: 1000, retryMaxMs: 60_000 };
    expect(nextRefreshAt(0, 100_000, policy, () => 0.5)).toBe(60_000);
    expect(nextRefreshAt(0, 100_000, policy, () => 0)).toBe(50_000);
    expect(nextRefreshAt(0, 100_000, policy, () => 1)).toBe(70_000);
    const delays = [1, 2, 3, 4, 10].map((n) => retryDelay(n, policy, undefined, () => 1));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 60_000]); // jitter only shortens a delay: random 1 is the full one
    expect(retryDelay(10, policy, 10_000, () => 1)).toBe(5000);
  });
});

describe('refresher: last good token carries on through upstream failures', () => {
  it('refreshes at the fraction, counts failures, keeps the sink, marks unhealthy, recovers', async () => {
    up.mode = 'ok';
    up.lifetimeSeconds = 100;
    const metrics = new Metrics({ defaultMetrics: false });
    const sink = new MemorySink();
    const states: unknown[] = [];
    const r = new SourceRefresher({
      binding: 'prom-cpd',
      source: source(cpd()),
      sinks: [sink],
      clock,
      logger,
      metrics,
      policy: { at: 0.5, jitter: 0, retryInitialMs: 2000, retryMaxMs: 8000 },
      random: () => 1,
      onState: (s) => void states.push(s),
    });
    clock.set(Math.floor(clock.now() / 1000) * 1000 + 1000);
    expect(await r.runIfDue()).toBe(true);
    const good = sink.value!;
    expect(await up.accepts(good)).toBe(true);
    expect(r.state).toMatchObject({ healthy: true, failures: 0, expiresAt: clock.now() + 100_000, nextAttemptAt: clock.now() + 50_000 });
    clock.advance(49_000);
    expect(await r.runIfDue()).toBeUndefined(); // not due yet
    clock.advance(1_000);

    up.mode = '500';
    expect(await r.runIfDue()).toBe(false);
    expect(sink.value).toBe(good); // never overwritten with nothing
    expect(r.state).toMatchObject({ healthy: false, failures: 1, lastErrorReason: 'server' });
    expect(r.state.lastError).toMatch(/answered 500/);
    expect(r.state.nextAttemptAt - clock.now()).toBe(2000);
    clock.advance(2000);
    await r.runIfDue();
    expect(r.state.nextAttemptAt - clock.now()).toBe(4000);
    clock.advance(4000);
    await r.runIfDue();
    expect(r.state.failures).toBe(3);
    const text = await metrics.registry.metrics();
    expect(text).toContain('tokenwarden_source_refresh_failures_total{binding="prom-cpd",source="http-login"} 3');
    expect(text).toContain('tokenwarden_binding_healthy{binding="prom-cpd"} 0');
    expect(await up.accepts(sink.value!)).toBe(true); // still valid: it has 44 s left

    up.mode = 'ok';
    clock.advance(8000);
    expect(await r.runIfDue()).toBe(true);
    expect(sink.value).not.toBe(good);
    expect(r.state).toMatchObject({ healthy: true, failures: 0 });
    expect(await metrics.registry.metrics()).toContain('tokenwarden_binding_healthy{binding="prom-cpd"} 1');
    expect(states.length).toBe(5);
    expect(JSON.stringify(states)).not.toContain(good);
  });

  it('source credential fields are censored even if someone logs a whole body', async () => {
    logger.info({ body: { username: 'svc', password: up.password, api_key: up.apiKey }, grant: { client_secret: up.clientSecret, refresh_token: 'rt-x', id_token: 'eyJx' } }, 'debugging a source');
  });

  it('nothing secret reached the log', async () => {
    const text = await waitFor(async () => {
      const t = readFileSync(logFile, 'utf8');
      return t.includes('upstream refresh failed') && t.includes('debugging a source') && t;
    }, 'the failures and the debug line in the log', 5000, 20);
    for (const s of [up.password, up.clientSecret, up.apiKey]) expect(text).not.toContain(s);
    expect(text).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
  });
});
