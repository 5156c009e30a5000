import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { DeliveryController } from '../src/delivery/controller.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, startTestServer } from './support/server.js';

/**
 * Kubernetes wired into the server end to end: `tokenwarden` started with a `kubernetes:`
 * section pointing at the API emulator (a kubeconfig file, as outside a cluster), real SQLite,
 * time moved by hand. A minted binding fills a Secret and rolls a Deployment once per token; its
 * removal cleans up and revokes; a seed-002 source binding follows a user's Secret into a file
 * and reports the user gone when the Secret is deleted; the controller can lead on a Lease.
 */
const NS = 'monitoring';
const USER_NS = 'user-alice';
const SEC = 1000;
const MIN = 60 * SEC;
const clock = new ManualClock(Date.UTC(2026, 4, 4, 9, 0, 0));
let k8s: KubernetesEmulator;
let kubeconfig: string;
let s: TestServer;
let ctl: DeliveryController;
let dir: string;
let hook: Server;
const signingKey = new TextEncoder().encode(`platform-key-${process.pid}-${Math.random()}`);

const binding = async (name: string) => (await s.api('GET', `/api/v1/bindings/${name}`)).body;
const auth = async (token: string) => (await s.api('GET', '/auth?scope=metrics.read', undefined, token)).status;
const secretToken = (name: string, key: string) => {
  const v = k8s.secretValue(NS, name, key);
  return v === undefined ? undefined : rememberSecret(v);
};
const deployment = () => k8s.get('deployments', NS, 'legacy-scraper')!;
const restartAnnotations = () => deployment().spec.template.metadata.annotations ?? {};
const okPatches = () => k8s.writes({ verbs: ['patch'], resource: 'deployments' }).filter((r) => r.status < 300);
const metricsText = () => s.tw.ctx.metrics.registry.metrics();

async function tickFor(ms: number, step = SEC): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await ctl.tick();
  }
}

beforeAll(async () => {
  k8s = await startKubernetesEmulator({ namespaces: ['default', NS, USER_NS, 'tokenwarden'] });
  dir = tempDir('k8s-delivery');
  kubeconfig = k8s.writeKubeconfig({ dir, namespace: 'tokenwarden' });
  k8s.seed('deployments', {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'legacy-scraper', namespace: NS },
    spec: { replicas: 1, selector: { matchLabels: { app: 'legacy-scraper' } }, template: { metadata: { labels: { app: 'legacy-scraper' } }, spec: { containers: [{ name: 'scraper', image: 'scraper:1' }] } } },
  });
  // A webhook receiver, so rotation-failure notices have somewhere to go.
  hook = createServer((req, res) => req.resume().on('end', () => res.writeHead(204).end()));
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`;
  s = await startTestServer({
    clock,
    config: { kubernetes: { kubeconfig }, notifications: { webhookUrl: hookUrl }, verify: { failureLimit: 100_000 }, delivery: { fileRoots: [dir] } },
    delivery: { autoStart: false, retryBaseMs: SEC, retryMaxMs: MIN, pollMs: SEC },
  });
  ctl = s.tw.ctx.delivery!;
  expect((await s.api('POST', '/api/v1/actors', { name: 'bot-prometheus', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
});

afterAll(async () => {
  await s?.close();
  await k8s?.stop();
  await new Promise((r) => hook?.close(r));
});

describe('a minted binding into a Secret, with a rollout restart', () => {
  let first: string;
  let firstId: string;

  it('delivers the token under the key, marks the Secret, restarts the Deployment once, and starts the rotation counters at 0', async () => {
    const res = await s.api('POST', '/api/v1/bindings', {
      name: 'prom',
      actor: 'bot-prometheus',
      scopes: ['metrics.read'],
      lifetime: '1h',
      sinks: [{ kind: 'kubernetes-secret', namespace: NS, name: 'prom-token', key: 'api-key' }],
      restart: [{ kind: 'Deployment', namespace: NS, name: 'legacy-scraper' }],
      rotation: { at: 0.5, jitter: 0, grace: '10s', confirm: 'none' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ state: 'active', healthy: true, lastError: null });
    firstId = res.body.tokenId;
    first = secretToken('prom-token', 'api-key')!;
    expect(first.slice(4, 16)).toBe(firstId);
    expect(await auth(first)).toBe(200);
    const meta = k8s.get('secrets', NS, 'prom-token')!.metadata;
    expect(meta.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'tokenwarden', 'tokenwarden.dev/binding': 'prom' });
    expect(meta.annotations).toMatchObject({ 'tokenwarden.dev/token-id': firstId, 'tokenwarden.dev/created': 'true' });
    expect(restartAnnotations()).toMatchObject({ 'tokenwarden.dev/restarted-for': firstId, 'kubectl.kubernetes.io/restartedAt': '2026-05-04T09:00:00Z' });
    expect(okPatches()).toHaveLength(1);
    expect(await metricsText()).toContain('tokenwarden_rotations_total{binding="prom",outcome="failure"} 0');
  });

  it('a rotation updates the Secret and restarts the Deployment exactly once, even when the restart is retried after a failure', async () => {
    k8s.clearLog();
    k8s.failNext(1, { verbs: ['patch'], resource: 'deployments', status: 500 });
    clock.advance(30 * MIN + SEC);
    await ctl.tick();
    const second = secretToken('prom-token', 'api-key')!;
    expect(second).not.toBe(first);
    const failing = await binding('prom');
    expect(failing.state).toBe('failing');
    expect(failing.lastError).toMatch(/^restart: rollout restart failed for Deployment monitoring\/legacy-scraper/);
    expect(failing.lastError).not.toContain(second);
    expect(await auth(first)).toBe(200); // the old token stays valid while the rotation is unfinished

    await tickFor(15 * SEC); // the retry restarts, then the grace period passes
    const done = await binding('prom');
    expect(done).toMatchObject({ state: 'active', healthy: true, lastError: null, inFlight: null });
    expect(second.slice(4, 16)).toBe(done.tokenId);
    expect(okPatches()).toHaveLength(1);
    expect(restartAnnotations()['tokenwarden.dev/restarted-for']).toBe(done.tokenId);
    expect(k8s.writes({ verbs: ['update'], resource: 'secrets' })).toHaveLength(1); // one write per token, none on retries
    expect(await auth(first)).toBe(401);
    expect(await auth(second)).toBe(200);
    expect(await metricsText()).toContain('tokenwarden_rotations_total{binding="prom",outcome="failure"} 1');
    // The failure was told to the webhook outbox, by the controller itself, with its reason.
    const notice = (await s.tw.ctx.notifier!.recent()).find((n) => n.kind === 'rotation.failed' && n.subject === 'prom');
    expect(JSON.parse(notice!.payload).binding.reason).toMatch(/^restart: rollout restart failed/);
  });

  it('a Secret deleted by hand between rotations is recreated with a fresh token at the next resync, and the consumer restarted for it', async () => {
    const before = secretToken('prom-token', 'api-key')!;
    const patches = okPatches().length;
    k8s.remove('secrets', NS, 'prom-token');
    clock.advance(5 * MIN);
    const report = await ctl.tick();
    expect(report.drifted).toBe(1);
    await tickFor(15 * SEC);
    const b = await binding('prom');
    expect(b).toMatchObject({ state: 'active', healthy: true, inFlight: null });
    const after = secretToken('prom-token', 'api-key')!;
    expect(after.slice(4, 16)).toBe(b.tokenId);
    expect(after).not.toBe(before);
    expect(k8s.get('secrets', NS, 'prom-token')!.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'tokenwarden', 'tokenwarden.dev/binding': 'prom' });
    expect(okPatches()).toHaveLength(patches + 1);
    expect(restartAnnotations()['tokenwarden.dev/restarted-for']).toBe(b.tokenId);
    expect((await s.api('GET', '/api/v1/bindings/prom/history')).body.items[0]).toMatchObject({ reason: 'drift', step: 'done' });

    // Unreadable (the API refuses): counted as a sink error, nothing rotated.
    k8s.failNext(1, { verbs: ['get'], resource: 'secrets', status: 403 });
    clock.advance(5 * MIN);
    expect((await ctl.tick()).drifted).toBe(0);
    expect(secretToken('prom-token', 'api-key')).toBe(after);
    expect(await metricsText()).toMatch(/tokenwarden_sink_errors_total\{binding="prom",sink="kubernetes-secret"\} [1-9]/);
  });

  it('removing the binding revokes its token and deletes the Secret it created', async () => {
    const token = secretToken('prom-token', 'api-key')!;
    const res = await s.api('DELETE', '/api/v1/bindings/prom');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.state).toBe('removed');
    expect(k8s.get('secrets', NS, 'prom-token')).toBeUndefined();
    expect(await auth(token)).toBe(401);
    expect((await s.api('GET', '/api/v1/bindings/prom')).status).toBe(404);
    expect(await metricsText()).not.toContain('binding="prom"');
  });
});

describe('a Secret tokenwarden did not create', () => {
  it('is refused through the API (409 naming sinks.0.name), nothing written and no token minted; adopt: true takes it over and removal leaves the Secret', async () => {
    k8s.seed('secrets', { metadata: { name: 'hand-made', namespace: NS, labels: { app: 'ops' } }, stringData: { token: 'theirs', 'ca.crt': 'pem' } });
    const tokens = async () => (await s.tw.ctx.store.kysely.selectFrom('tokens').select('id').execute()).length;
    const before = await tokens();
    const spec = (adopt?: boolean) => ({
      name: 'takeover',
      actor: 'bot-prometheus',
      scopes: ['metrics.read'],
      lifetime: '1h',
      sinks: [{ kind: 'kubernetes-secret', namespace: NS, name: 'hand-made', ...(adopt ? { adopt } : {}) }],
      rotation: { confirm: 'none', grace: '0s' },
    });
    const res = await s.api('POST', '/api/v1/bindings', spec());
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.field).toBe('sinks.0.name');
    expect(res.body.detail).toContain('adopt: true');
    expect(k8s.secretValue(NS, 'hand-made', 'token')).toBe('theirs');
    expect(await tokens()).toBe(before);

    expect((await s.api('POST', '/api/v1/bindings', spec(true))).status).toBe(201);
    expect(await auth(secretToken('hand-made', 'token')!)).toBe(200);
    expect((await s.api('DELETE', '/api/v1/bindings/takeover')).status).toBe(200);
    const left = k8s.get('secrets', NS, 'hand-made')!;
    expect(left).toBeDefined();
    expect(k8s.secretValue(NS, 'hand-made', 'token')).toBeUndefined();
    expect(k8s.secretValue(NS, 'hand-made', 'ca.crt')).toBe('pem');
    expect(left.metadata.labels).toEqual({ app: 'ops' });
  });
});

describe('seed 002: a kubernetes-secret source binding (no actor, scopes or lifetime needed)', () => {
  const file = () => join(dir, 'alice.token');
  let token: string;
  let exp: number;

  it('follows the user token from the Secret into a file', async () => {
    exp = Math.floor(clock.now() / 1000) + 20 * 60;
    token = rememberSecret(await new SignJWT({ scope: 'api' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(exp).sign(signingKey));
    k8s.seed('secrets', { metadata: { name: 'access-token', namespace: USER_NS }, stringData: { AUTH_TOKEN: token } });
    const res = await s.api('POST', '/api/v1/bindings', {
      name: 'alice',
      source: { kind: 'kubernetes-secret', namespace: USER_NS, name: 'access-token', key: 'AUTH_TOKEN' },
      sinks: [{ kind: 'file', path: file() }],
      rotation: { at: 0.5, jitter: 0, grace: '1s', confirm: 'none' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ state: 'active', healthy: true, actor: null, lifetime: null, source: { kind: 'kubernetes-secret' } });
    expect(Date.parse(res.body.expiresAt)).toBe(exp * 1000);
    expect(readFileSync(file(), 'utf8').trim()).toBe(token);
  });

  it('when the Secret is deleted the binding is "gone" and unhealthy, says why, and the file keeps the last token', async () => {
    k8s.remove('secrets', USER_NS, 'access-token');
    clock.advance(10 * MIN + SEC); // the refresh is due at half of the 20-minute life
    await ctl.tick();
    const b = await binding('alice');
    expect(b.state).toBe('gone');
    expect(b.healthy).toBe(false);
    expect(b.lastError).toBe('kubernetes-secret: Secret user-alice/access-token not found: the user may have been offboarded, or the Secret was renamed');
    expect(readFileSync(file(), 'utf8').trim()).toBe(token);
    const metrics = await metricsText();
    expect(metrics).toContain('tokenwarden_binding_healthy{binding="alice"} 0');
    expect(metrics).toMatch(/tokenwarden_source_refresh_failures_total\{binding="alice",source="kubernetes-secret"\} 1/);

    // The platform writes the Secret again (the user is back): the next retry recovers.
    const again = rememberSecret(await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(exp + 600).sign(signingKey));
    k8s.seed('secrets', { metadata: { name: 'access-token', namespace: USER_NS }, stringData: { AUTH_TOKEN: again } });
    await tickFor(5 * SEC);
    expect(await binding('alice')).toMatchObject({ state: 'active', healthy: true, lastError: null });
    expect(readFileSync(file(), 'utf8').trim()).toBe(again);
  });

  it('a binding without source: still needs actor, scopes and lifetime, and the error names the field', async () => {
    const res = await s.api('POST', '/api/v1/bindings', { name: 'no-actor', scopes: ['metrics.read'], lifetime: '1h', sinks: [{ kind: 'file', path: join(dir, 'x.token') }] });
    expect(res.status).toBe(400);
    expect(res.body.field).toBe('actor');
    expect(res.body.detail).toMatch(/actor is required for a binding that mints its token/);
  });
});

describe('delivery.leader: kubernetes', () => {
  it('elects the controller leader on the configured Lease and hands it over at shutdown', async () => {
    const other = await startTestServer({
      clock,
      config: { kubernetes: { kubeconfig, lease: { namespace: 'tokenwarden', name: 'tw-leader', durationSeconds: 10 } }, delivery: { leader: 'kubernetes' } },
      delivery: { autoStart: false },
    });
    try {
      const report = await other.tw.ctx.delivery!.tick();
      expect(report.leader).toBe(true);
      const lease = k8s.get('leases', 'tokenwarden', 'tw-leader')!;
      expect(lease.spec).toMatchObject({ leaseDurationSeconds: 10, leaseTransitions: 0 });
      expect(lease.spec.holderIdentity).toMatch(/:\d+:[0-9a-f]{8}(:\d+)?$/);
    } finally {
      await other.close();
    }
    expect(k8s.get('leases', 'tokenwarden', 'tw-leader')!.spec.holderIdentity).toBe('');
  });
});
