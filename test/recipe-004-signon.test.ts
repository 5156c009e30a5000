import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ManualClock } from '../src/clock.js';
import type { DeliveryController } from '../src/delivery/controller.js';
import { loadKubeConfig } from '../src/kubernetes/client.js';
import { runCli } from './support/cli.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret, tempDir } from './support/output.js';
import { recipeBlock, recipeCommands } from './support/recipes.js';
import { type TestServer, startTestServer } from './support/server.js';

/**
 * docs/recipes/004-signon.md, executed with the page's real durations on a server whose clock the
 * test moves: the binding rotates a token into a Secret (Kubernetes API emulator), restarts the
 * client's Deployment, and revokes the old token only after the client has called a gated endpoint
 * with the new one; then the shipped "expires soon" alert's metric and the unused-token report with
 * revoke, through the page's CLI commands.
 */
const PAGE = 'docs/recipes/004-signon.md';
const BINDING = 'short-url-manager-publishing-api';
const MIN = 60_000;
const DAY = 86_400_000;
const t0 = Date.UTC(2026, 2, 2, 9, 0, 0);
const clock = new ManualClock(t0);
let s: TestServer;
let ctl: DeliveryController;
let k8s: KubernetesEmulator;
let env: Record<string, string>;
let dir: string;
/** Two API users' tokens that no binding manages (created in the first test). */
const apiUsers: { hmrc?: any; publisher?: any } = {};

/**
 * short-url-manager: reads its token once at start (ENV), like the Rails app, and calls
 * Publishing API, whose proxy asks tokenwarden. Its pods restart only when the rollout happens.
 */
const client = {
  token: '',
  restartedFor: '' as string | undefined,
  start() {
    this.token = rememberSecret(k8s.secretValue('apps', 'signon-token-short-url-manager-publishing-api', 'bearer_token') ?? '');
    this.restartedFor = restartedFor();
  },
  async call(): Promise<number> {
    const res = await fetch(`${s.url}/auth?scope=publishing-api`, { headers: { authorization: `Bearer ${this.token}`, 'user-agent': 'short-url-manager' } });
    return res.status;
  },
};
const restartedFor = () => k8s.get('deployments', 'apps', 'short-url-manager')?.spec.template.metadata.annotations?.['tokenwarden.dev/restarted-for'];
const binding = async () => (await s.api('GET', `/api/v1/bindings/${BINDING}`)).body;
const token = async (id: string) => (await s.api('GET', `/api/v1/tokens/${id}`)).body;

async function settle(rounds = 3, stepMs = 1000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await ctl.tick();
    clock.advance(stepMs);
  }
}

async function cli(args: string[]) {
  const r = await runCli(args, env);
  expect(r.code, `tokenwarden ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

beforeAll(async () => {
  dir = tempDir('recipe-004');
  k8s = await startKubernetesEmulator({ namespaces: ['default', 'apps'] });
  k8s.seed('deployments', {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'short-url-manager', namespace: 'apps' },
    spec: {
      selector: { matchLabels: { app: 'short-url-manager' } },
      template: { metadata: { labels: { app: 'short-url-manager' } }, spec: { containers: [{ name: 'app', image: 'short-url-manager:1' }] } },
    },
  });
  s = await startTestServer({
    clock,
    config: { verify: { failureLimit: 10_000 } },
    delivery: { kubernetes: loadKubeConfig({ mode: 'kubeconfig', path: k8s.writeKubeconfig({ dir }) }), autoStart: false, pollMs: 1000, retryBaseMs: 1000 },
  });
  ctl = s.tw.ctx.delivery!;
  env = { TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: s.adminToken };
  writeFileSync(join(dir, `${BINDING}.yaml`), recipeBlock(PAGE, 'binding'));
});

afterAll(async () => {
  await s?.close();
  await k8s?.stop();
});

describe('recipe 004 (Signon): rotation confirmed by use, the expiry alert, the unused-token report', () => {
  let firstId: string;

  it('sets up the binding: the token is synced into the Secret and the client restarted', async () => {
    for (const args of recipeCommands(PAGE, 'setup', { [`${BINDING}.yaml`]: join(dir, `${BINDING}.yaml`) })) await cli(args);
    // Other API users, as Signon has them: one token used by its client, one nobody uses. Neither is managed by a binding.
    for (const name of ['bot-hmrc-export', 'bot-content-publisher']) {
      expect((await s.api('POST', '/api/v1/actors', { name, kind: 'service', scopes: ['publishing-api'] })).status).toBe(201);
    }
    const hmrc = await s.api('POST', '/api/v1/tokens', { actor: 'bot-hmrc-export', name: 'hmrc-export', scopes: ['publishing-api'], expiresIn: '40d' });
    const publisher = await s.api('POST', '/api/v1/tokens', { actor: 'bot-content-publisher', name: 'content-publisher', scopes: ['publishing-api'], expiresIn: '60d' });
    expect([hmrc.status, publisher.status]).toEqual([201, 201]);
    apiUsers.hmrc = hmrc.body;
    apiUsers.publisher = publisher.body;

    await settle();
    const b = await binding();
    expect(b).toMatchObject({ state: 'active', healthy: true, actor: 'bot-short-url-manager' });
    firstId = b.tokenId;
    expect(restartedFor()).toBe(firstId);
    client.start();
    expect(client.token.slice(4, 16)).toBe(firstId);
    expect(await client.call()).toBe(200);
  });

  it('rotation: the old token stays active until the client has used the new one, then goes after quiet and grace', async () => {
    const [rotate, history] = recipeCommands(PAGE, 'rotate');
    await cli(rotate!);
    await settle(2);
    const during = await binding();
    const secondId = during.inFlight?.newTokenId ?? during.tokenId;
    expect(secondId).not.toBe(firstId);
    expect(k8s.secretValue('apps', 'signon-token-short-url-manager-publishing-api', 'bearer_token')!.slice(4, 16)).toBe(secondId);
    expect(restartedFor()).toBe(secondId); // the rollout was asked for…

    // …but the old pods keep serving with the old token for a while (a slow rollout).
    for (let i = 0; i < 4; i++) {
      clock.advance(10 * MIN);
      expect(await client.call()).toBe(200);
      await settle(1);
    }
    expect((await token(firstId)).state).toBe('active');
    expect((await binding()).inFlight).toMatchObject({ step: 'confirm' });

    // The new pods start with the new token and call Publishing API with it.
    client.start();
    expect(client.token.slice(4, 16)).toBe(secondId);
    const firstUseOfNew = clock.now();
    expect(await client.call()).toBe(200);
    await settle(1);
    expect((await token(firstId)).state).toBe('active'); // the old one was used 1 s ago: not quiet yet

    // quiet (10m) with the old token unused, then grace (5m), with the client calling all along.
    for (let i = 0; i < 16; i++) {
      clock.advance(MIN);
      expect(await client.call()).toBe(200);
      await settle(1);
    }
    const old = await token(firstId);
    expect(old.state).toBe('revoked');
    expect(Date.parse(old.revokedAt)).toBeGreaterThanOrEqual(firstUseOfNew + 15 * MIN);
    expect(old.revokeReason).toBe(`rotated: replaced by ${secondId} (binding ${BINDING})`);
    expect((await token(secondId)).state).toBe('active');
    expect(await binding()).toMatchObject({ state: 'active', healthy: true, tokenId: secondId });

    const rows = JSON.parse((await cli(['-o', 'json', ...history!])).stdout);
    expect(rows[0]).toMatchObject({ reason: 'manual', step: 'done', oldTokenId: firstId, newTokenId: secondId });
    expect((await cli(history!)).stdout).toMatch(/manual\s+done/);
  });

  it('"expires soon" is the shipped alert TokenwardenTokenExpiringSoon, fed by the metric of unmanaged tokens', async () => {
    const rules = parse(readFileSync('deploy/prometheus/tokenwarden-rules.yml', 'utf8')) as { groups: { rules: { alert?: string; expr: string }[] }[] };
    const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === 'TokenwardenTokenExpiringSoon');
    // Relative to the token's own lifetime (its last fifth), at most its last 7 days.
    expect(rule?.expr).toContain('min by (token_id, token_name, actor) (tokenwarden_token_expires_in_seconds{managed="false"})');
    expect(rule?.expr).toContain('clamp_max(0.2 * max by (token_id, token_name, actor) (tokenwarden_token_lifetime_seconds{managed="false"}), 7 * 86400)');
    const unitTests = readFileSync('deploy/prometheus/tests/token-expiry.test.yml', 'utf8');
    expect(unitTests).toContain('alertname: TokenwardenTokenExpiringSoon');

    // 35 days on, hmrc-export (40 days) has 5 days left; the binding's token is managed and not alerted on.
    clock.set(t0 + 25 * DAY);
    const { hmrc, publisher } = apiUsers;
    expect((await fetch(`${s.url}/auth?scope=publishing-api`, { headers: { authorization: `Bearer ${publisher.token}` } })).status).toBe(200);
    clock.set(t0 + 35 * DAY);
    expect(await client.call()).toBe(200);
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${s.adminToken}` } })).text();
    const gauge = new RegExp(`tokenwarden_token_expires_in_seconds\\{token_id="${hmrc.id}",token_name="hmrc-export",actor="bot-hmrc-export",managed="false"\\} (\\d+)`).exec(metrics);
    expect(Number(gauge?.[1])).toBe(5 * 86400);
    const life = new RegExp(`tokenwarden_token_lifetime_seconds\\{token_id="${hmrc.id}",token_name="hmrc-export",actor="bot-hmrc-export",managed="false"\\} (\\d+)`).exec(metrics);
    expect(Number(life?.[1])).toBe(40 * 86400);
    // 5 days left < min(0.2 × 40 days, 7 days): the alert's condition holds.
    expect(Number(gauge?.[1])).toBeLessThan(Math.min(0.2 * Number(life?.[1]), 7 * 86400));
    expect(metrics).toMatch(new RegExp(`tokenwarden_token_expires_in_seconds\\{token_id="[^"]+",token_name="binding:${BINDING}",actor="bot-short-url-manager",managed="true"\\}`));
  });

  it('the unused-token report lists only the disused token, and --revoke --yes revokes it with the reason audited', async () => {
    const { hmrc, publisher } = apiUsers;
    await s.tw.ctx.verifier.lastUse.flush(); // last use is written in batches
    const [report, revoke] = recipeCommands(PAGE, 'unused');
    const listed = JSON.parse((await cli(['-o', 'json', ...report!])).stdout);
    expect(listed.map((t: any) => t.id)).toEqual([hmrc.id]);
    const table = await cli(report!);
    expect(table.stdout).toMatch(/hmrc-export\s+bot-hmrc-export\s+publishing-api\s+active/);
    expect(table.stdout).toContain('never');

    const revoked = await cli(revoke!);
    expect(revoked.stderr).toContain(`revoked ${hmrc.id} (bot-hmrc-export/hmrc-export)`);
    expect((await token(hmrc.id)).state).toBe('revoked');
    expect((await token(publisher.id)).state).toBe('active');
    expect((await binding()).healthy).toBe(true);
    const audit = JSON.parse((await cli(['-o', 'json', 'audit', '--action', 'token.revoke', '--target', hmrc.id])).stdout);
    expect(JSON.stringify(audit)).toContain('unused for 30 days');
  });
});
