import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import type { DeliveryController } from '../src/delivery/controller.js';
import { loadKubeConfig } from '../src/kubernetes/client.js';
import { runCli } from './support/cli.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { type TestServer, startTestServer } from './support/server.js';
import { FakeUpstream } from './support/upstream.js';

/**
 * A delivered token is watched, not assumed (issue 15, points 2, 4, 5): a token revoked by hand, a
 * sink file deleted or overwritten is healed within seconds (real time, real files, a real server
 * in-process); a rotation that protected nothing is recorded as such; an upstream back from an
 * outage longer than its token's life is used within seconds (ManualClock).
 */
const SEC = 1000;
const readToken = (path: string) => rememberSecret(readFileSync(path, 'utf8').trim());
const readTokenIfAny = (path: string) => (existsSync(path) ? readToken(path) : '');

async function principalOf(s: TestServer): Promise<Principal> {
  const v = await s.tw.ctx.verifier.inspect(s.adminToken);
  if (!v.ok) throw new Error('admin token does not verify');
  return { actorId: v.identity.actorId, actorName: v.identity.actorName, tokenId: v.identity.tokenId, scopes: v.identity.scopes };
}

const healthyGauge = async (s: TestServer, name: string) => {
  const text = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_binding_healthy');
  return new RegExp(`tokenwarden_binding_healthy\\{binding="${name}"\\} (\\d)`).exec(text)?.[1];
};

describe('healing in real time (the controller on its timer, real files)', () => {
  let s: TestServer;
  let dir: string;
  const auth = async (token: string) => (await s.api('GET', '/auth?scope=metrics.read', undefined, token)).status;
  const history = async (name: string) => (await s.api('GET', `/api/v1/bindings/${name}/history`)).body.items as any[];

  beforeAll(async () => {
    // resync an hour away: anything healed here is healed by the watch, not the safety net.
    dir = tempDir('binding-heal');
    s = await startTestServer({
      config: { verify: { failureLimit: 100_000 }, delivery: { resync: '1h', fileRoots: [dir] } },
      delivery: { intervalMs: 500, pollMs: 500, retryBaseMs: 500, sinkPollMs: 500 },
    });
    expect((await s.api('POST', '/api/v1/actors', { name: 'bot-healed', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
  });
  afterAll(async () => s?.close());

  const create = async (name: string, path: string) => {
    const res = await s.api('POST', '/api/v1/bindings', {
      name,
      actor: 'bot-healed',
      scopes: ['metrics.read'],
      lifetime: '1h',
      sinks: [{ kind: 'file', path }],
      rotation: { confirm: 'none', grace: '0s' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await waitFor(async () => (await s.api('GET', `/api/v1/bindings/${name}`)).body.state === 'active', `${name} delivered`);
    return readToken(path);
  };

  it('a token revoked by hand outside the binding is replaced within 5 s, and the history says why', async () => {
    const path = join(dir, 'revoked.token');
    const first = await create('revoked', path);
    expect(await auth(first)).toBe(200);
    const started = Date.now();
    // Forced, as an admin would after the API's guard: straight through the Authority.
    await s.tw.ctx.authority.revokeToken(await principalOf(s), first.slice(4, 16), 'leaked in a CI log');
    const second = await waitFor(async () => {
      const t = readTokenIfAny(path);
      return t && t !== first && (await auth(t)) === 200 ? t : undefined;
    }, 'a fresh valid token in the file', 5 * SEC);
    expect(Date.now() - started).toBeLessThan(5 * SEC);
    expect(await auth(first)).toBe(401);
    const last = (await history('revoked'))[0];
    expect(last).toMatchObject({ reason: 'revoked by admin outside the binding', step: 'done', outcome: 'revoked-before-confirm', newTokenId: second.slice(4, 16) });
    const b = (await s.api('GET', '/api/v1/bindings/revoked')).body;
    expect(b).toMatchObject({ healthy: true, tokenId: second.slice(4, 16), sinkStates: [{ sink: `file:${path}`, status: 'ok', tokenId: second.slice(4, 16) }] });
    await waitFor(async () => (await healthyGauge(s, 'revoked')) === '1', 'the healthy gauge back at 1', 3 * SEC);
    const counted = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_rotations_total');
    expect(counted).toContain('tokenwarden_rotations_total{binding="revoked",outcome="revoked-before-confirm"} 1');
  });

  it('a deleted sink file is refilled within 5 s, and an overwritten one too', async () => {
    const path = join(dir, 'deleted.token');
    const first = await create('deleted', path);
    rmSync(path);
    const second = await waitFor(async () => {
      const t = readTokenIfAny(path);
      return t && t !== first ? t : undefined;
    }, 'the deleted file back', 5 * SEC);
    expect(await auth(second)).toBe(200);
    expect((await history('deleted'))[0]).toMatchObject({ reason: 'drift', step: 'done' });

    writeFileSync(path, 'not-a-token\n', { mode: 0o600 });
    const third = await waitFor(async () => {
      const t = readTokenIfAny(path);
      return t && t !== 'not-a-token' && t !== second ? t : undefined;
    }, 'the overwritten file put right', 5 * SEC);
    expect(await auth(third)).toBe(200);
    // The token it replaced is revoked: nothing usable left behind. The file is written before the
    // rotation's last step revokes the old token (deliver → confirm → revoke), so a reader quick
    // enough sees the new file a few milliseconds before that commit.
    await waitFor(async () => (await auth(second)) === 401, 'the replaced token refused', 2 * SEC);
  });

  it('tokenwarden_binding_healthy is 0 exactly while the sink does not hold a token that verifies', async () => {
    const sub = join(dir, 'gone');
    mkdirSync(sub);
    const path = join(sub, 'token');
    const first = await create('broken', path);
    expect(await healthyGauge(s, 'broken')).toBe('1');
    // The directory goes away with the file: nothing can be delivered until it is back.
    rmSync(sub, { recursive: true });
    await waitFor(async () => (await healthyGauge(s, 'broken')) === '0', 'the healthy gauge at 0', 5 * SEC);
    const b = (await s.api('GET', '/api/v1/bindings/broken')).body;
    expect(b.healthy).toBe(false);
    expect(['missing', 'write-failed']).toContain(b.sinkStates[0].status);
    expect(await healthyGauge(s, 'broken')).toBe('0');
    mkdirSync(sub);
    const second = await waitFor(async () => {
      const t = readTokenIfAny(path);
      return t && t !== first ? t : undefined;
    }, 'the file refilled once its directory is back', 15 * SEC);
    expect(await auth(second)).toBe(200);
    await waitFor(async () => (await healthyGauge(s, 'broken')) === '1', 'the healthy gauge back at 1', 5 * SEC);
  });
});

describe('honest outcomes and recovery (ManualClock)', () => {
  const clock = new ManualClock(Date.UTC(2026, 2, 1));
  let s: TestServer;
  let ctl: DeliveryController;
  let dir: string;
  let k8s: KubernetesEmulator;
  let up: FakeUpstream;
  const binding = async (name: string) => (await s.api('GET', `/api/v1/bindings/${name}`)).body;
  const cli = () => ({ TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: s.adminToken });

  beforeAll(async () => {
    k8s = await startKubernetesEmulator({ namespaces: ['default', 'monitoring'] });
    dir = tempDir('binding-outcomes');
    up = await FakeUpstream.start({ now: () => clock.now(), lifetimeSeconds: 20 });
    writeFileSync(join(dir, 'password'), `${up.password}\n`, { mode: 0o600 });
    process.env.TW_TEST_HEAL_USERNAME = up.username;
    s = await startTestServer({
      clock,
      config: { verify: { failureLimit: 100_000 }, notifications: { webhookUrl: 'http://127.0.0.1:9/hook' }, delivery: { fileRoots: [dir] } },
      // The production backoff ceiling (5 min): only the urgency cap can bring a retry within seconds.
      delivery: { autoStart: false, pollMs: SEC, kubernetes: loadKubeConfig({ mode: 'kubeconfig', path: k8s.writeKubeconfig({ dir }) }) },
    });
    ctl = s.tw.ctx.delivery!;
    expect((await s.api('POST', '/api/v1/actors', { name: 'bot-outcome', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
  });
  afterAll(async () => {
    await s?.close();
    await k8s?.stop();
    await up?.close();
  });

  it('a rotation whose old token expired before the new one was confirmed is recorded, counted and notified as expired-before-confirm', async () => {
    const path = join(dir, 'late.token');
    const res = await s.api('POST', '/api/v1/bindings', {
      name: 'late',
      actor: 'bot-outcome',
      scopes: ['metrics.read'],
      lifetime: '10m',
      sinks: [{ kind: 'file', path }],
      rotation: { at: 0.5, jitter: 0, confirm: 'usage', grace: '0s', quiet: '10s', confirmTimeout: '1h' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const first = readToken(path);
    clock.advance(5 * 60 * SEC);
    await ctl.tick(); // the rotation delivers the new token; nobody uses it, so it is not confirmed
    const second = readToken(path);
    expect(second).not.toBe(first);
    expect((await binding('late')).inFlight).toMatchObject({ step: 'confirm' });
    clock.advance(5 * 60 * SEC + SEC); // the old token expires while the new one is still unconfirmed
    await ctl.tick();
    // (The same pass starts the next scheduled rotation: the one that finished is the second.)
    const last = ((await s.api('GET', '/api/v1/bindings/late/history')).body.items as any[]).find((r) => r.seq === 2);
    expect(last).toMatchObject({ step: 'done', outcome: 'expired-before-confirm', newTokenId: second.slice(4, 16) });
    expect(last.note).toMatch(/^the old token expired at .* before the new one was confirmed$/);
    const counted = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_rotations_total');
    expect(counted).toContain('tokenwarden_rotations_total{binding="late",outcome="expired-before-confirm"} 1');
    expect(counted).toContain(`tokenwarden_rotations_total{binding="late",outcome="success"} 1`); // the first delivery only
    const notice = (await s.tw.ctx.notifier!.recent()).find((n) => n.kind === 'rotation.unconfirmed' && n.subject === 'late');
    expect(JSON.parse(notice!.payload).binding).toMatchObject({ name: 'late', outcome: 'expired-before-confirm' });
    const list = await runCli(['binding', 'list'], cli());
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/late\s.*expired-before-confirm/);
    const history = await runCli(['binding', 'history', 'late'], cli());
    expect(history.stdout).toMatch(/\n2\s+scheduled\s+done\s+expired-before-confirm\s/);
  });

  it('binding show names the failing Kubernetes sink and shows the file sink holding a valid token', async () => {
    const path = join(dir, 'split.token');
    k8s.failNext(1000, { verbs: ['create', 'update', 'patch'], resource: 'secrets', status: 500 });
    const res = await s.api('POST', '/api/v1/bindings', {
      name: 'split',
      actor: 'bot-outcome',
      scopes: ['metrics.read'],
      lifetime: '1h',
      sinks: [
        { kind: 'file', path },
        { kind: 'kubernetes-secret', namespace: 'monitoring', name: 'split-token' },
      ],
      rotation: { confirm: 'none', grace: '0s' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const token = readToken(path);
    const b = await binding('split');
    expect(b).toMatchObject({ state: 'failing', healthy: false, retrying: true });
    expect(b.sinkStates).toMatchObject([
      { sink: `file:${path}`, status: 'ok', tokenId: token.slice(4, 16) },
      { sink: 'secret:monitoring/split-token#token', status: 'write-failed' },
    ]);
    expect(Date.parse(b.nextAttemptAt)).toBeGreaterThanOrEqual(clock.now());
    const show = await runCli(['binding', 'show', 'split'], cli());
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/split\s+bot-outcome\s+metrics\.read\s+failing \(deliver\)\s+[A-Za-z0-9]{12}\s/); // the token the file holds, not "-"
    expect(show.stdout).toContain(token.slice(4, 16));
    expect(show.stdout).toMatch(/failing \(deliver\)\s+\S+\s+-\s+retry /); // the next attempt, not a past rotation time
    expect(show.stdout).toContain(`file:${path}  holds ${token.slice(4, 16)}, which verifies`);
    expect(show.stdout).toMatch(/secret:monitoring\/split-token#token {2}write-failed: /);
    expect(show.stdout).not.toContain(token);
    k8s.clearFaults();
    for (let i = 0; i < 15 && (await binding('split')).state !== 'active'; i++) {
      clock.advance(SEC);
      await ctl.tick();
    }
    expect((await binding('split')).sinkStates.map((x: { status: string }) => x.status)).toEqual(['ok', 'ok']);
  });

  it('an http-login upstream down longer than its token lives is used within 15 s of its return', async () => {
    const path = join(dir, 'upstream.token');
    const res = await s.api('POST', '/api/v1/bindings', {
      name: 'upstream',
      actor: 'bot-outcome',
      scopes: ['metrics.read'],
      lifetime: '1h',
      sinks: [{ kind: 'file', path }],
      rotation: { confirm: 'none', grace: '0s' },
      source: {
        kind: 'http-login',
        url: `${up.url}/icp4d-api/v1/authorize`,
        body: { username: { env: 'TW_TEST_HEAL_USERNAME' }, password: { file: join(dir, 'password') } },
        tokenPath: '.token',
        timeout: '2s',
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const first = readToken(path);
    expect(await up.accepts(first)).toBe(true);
    up.mode = '500';
    // Two minutes down: six times the token's 20 s life. Without the urgency cap the retries would be minutes apart by now.
    for (let t = 0; t < 120 * SEC; t += SEC) {
      clock.advance(SEC);
      await ctl.tick();
    }
    const failing = await binding('upstream');
    expect(failing).toMatchObject({ state: 'failing', healthy: false, retrying: true });
    expect(Date.parse(failing.nextAttemptAt) - clock.now()).toBeLessThanOrEqual(10 * SEC);
    expect(readToken(path)).toBe(first); // the last good token is never replaced with nothing
    up.mode = 'ok';
    const back = clock.now();
    let fresh = first;
    while (fresh === first && clock.now() - back < 30 * SEC) {
      clock.advance(SEC);
      await ctl.tick();
      fresh = readToken(path);
    }
    expect(fresh).not.toBe(first);
    expect(clock.now() - back).toBeLessThanOrEqual(15 * SEC);
    expect(await up.accepts(fresh)).toBe(true);
    expect(await binding('upstream')).toMatchObject({ state: 'active', healthy: true, retrying: false });
  });

  it('doctor: a revoked binding token names binding rotate (or says it heals); no newline warning for its own file; an upstream token judged the same every run', async () => {
    const path = join(dir, 'late.token');
    const held = readFileSync(path, 'utf8');
    const doctor = (body: Record<string, unknown>) => s.api('POST', '/api/v1/doctor', body).then((r) => r.body);
    // The file as tokenwarden wrote it: the trailing newline is by design.
    expect((await doctor({ token: held, file: path })).notes).toEqual([]);
    expect((await doctor({ token: held })).notes.join(' ')).toContain('ends with a newline');
    // Revoked outside the binding, before the controller's next pass: it is healing, and binding rotate is the fix if not.
    await s.tw.ctx.authority.revokeToken(await principalOf(s), held.trim().slice(4, 16), 'by hand');
    const revoked = await doctor({ token: held, file: path });
    expect(revoked).toMatchObject({ status: 401, reason: 'revoked' });
    expect(revoked.hints.join(' ')).toContain('binding late delivered it and is healing');
    expect(revoked.hints.join(' ')).toContain('tokenwarden binding rotate late');
    // After the heal: the consumer is the one to look at.
    for (let i = 0; i < 5; i++) {
      clock.advance(SEC);
      await ctl.tick();
    }
    expect(readToken(path)).not.toBe(held.trim());
    expect((await doctor({ token: held })).hints.join(' ')).toMatch(/binding late has since delivered token \S+; the consumer still holds the revoked one/);
    // The upstream's token: recognised by its binding's fingerprint, the same verdict twice.
    const upstream = readFileSync(join(dir, 'upstream.token'), 'utf8');
    const a = await doctor({ token: upstream });
    const b = await doctor({ token: upstream });
    expect(a).toEqual(b);
    expect(a).toMatchObject({ upstream: { binding: 'upstream', source: 'http-login' } });
    expect(JSON.stringify(a)).not.toContain(upstream.trim());
  });
});
