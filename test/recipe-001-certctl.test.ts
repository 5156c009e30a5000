import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadKubeConfig } from '../src/kubernetes/client.js';
import { runCli } from './support/cli.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { type PrometheusProcess, startPrometheus } from './support/prometheus.js';
import { recipeCommands, recipeYaml, recipeBlock } from './support/recipes.js';
import { type TestServer, startTestServer } from './support/server.js';

/**
 * docs/recipes/001-certctl.md, executed: the page's `apply` commands through the CLI, its binding
 * (lifetimes scaled to seconds) into a Secret in the Kubernetes API emulator and a file, a real
 * Prometheus scraping tokenwarden's own gated /metrics with the page's credentials_file config
 * across two usage-confirmed rotations, then the page's `doctor` command for each troubleshooting case.
 */
const PAGE = 'docs/recipes/001-certctl.md';
const ROTATIONS = 2;
let s: TestServer;
let k8s: KubernetesEmulator;
let prometheus: PrometheusProcess;
let dir: string;
let tokenFile: string;
let env: Record<string, string>;
let firstToken: string;

const successes = async () => {
  const text = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_rotations_total');
  return Number(/tokenwarden_rotations_total\{binding="certctl-prometheus",outcome="success"\} (\d+)/.exec(text)?.[1] ?? 0);
};

beforeAll(async () => {
  dir = tempDir('recipe-001');
  tokenFile = join(dir, 'certctl.token');
  k8s = await startKubernetesEmulator({ namespaces: ['default', 'certctl'] });
  const kubeconfig = k8s.writeKubeconfig({ dir });
  s = await startTestServer({
    config: { verify: { failureLimit: 100_000 }, delivery: { fileRoots: [dir] } },
    delivery: { kubernetes: loadKubeConfig({ mode: 'kubeconfig', path: kubeconfig }), intervalMs: 200, pollMs: 200, retryBaseMs: 500 },
  });
  env = { TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: s.adminToken, KUBECONFIG: kubeconfig };

  // The page's binding with its lifetimes scaled from days and minutes to seconds.
  const binding = recipeBlock(PAGE, 'binding', {
    'lifetime: 7d': 'lifetime: 12s',
    'at: 0.66': 'at: 0.4',
    'quiet: 2m': 'quiet: 1500ms',
    'grace: 1m': 'grace: 500ms',
    '/etc/prometheus/secrets/certctl.token': tokenFile,
  });
  writeFileSync(join(dir, 'certctl-prometheus.yaml'), binding);
  for (const args of recipeCommands(PAGE, 'apply', { 'certctl-prometheus.yaml': join(dir, 'certctl-prometheus.yaml') })) {
    const r = await runCli(args, env);
    expect(r.code, `tokenwarden ${args.join(' ')}: ${r.stderr}`).toBe(0);
  }
  firstToken = rememberSecret(readFileSync(tokenFile, 'utf8').trim());
  expect(k8s.secretValue('certctl', 'certctl-prometheus-key', 'api-key')).toBe(firstToken);

  const promConfig = recipeYaml(PAGE, 'prometheus', {
    '/etc/prometheus/secrets/certctl.token': tokenFile,
    'certctl.your-org.example:8443': new URL(s.url).host,
    '/api/v1/metrics/prometheus': '/metrics', // tokenwarden's own /metrics: the same metrics.read check
  });
  promConfig.global = { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1m' };
  prometheus = await startPrometheus({ dir, config: promConfig, logName: 'prometheus-recipe-001' });
}, 90_000);

afterAll(async () => {
  await prometheus?.stop();
  await s?.close();
  await k8s?.stop();
});

describe('recipe 001 (certctl): a metrics.read key in certctl-prometheus-key, rotated with no 401', () => {
  it('rotates twice: minted, delivered to the Secret and the file, seen in use, old one revoked; Prometheus never gets a 401', async () => {
    await waitFor(async () => (await prometheus.query('/api/v1/query?query=up')).result.some((r: any) => r.value[1] === '1'), 'the first scrape', 30_000, 250);
    const base = await successes();
    const start = Date.now() / 1000;
    await waitFor(async () => (await successes()) >= base + ROTATIONS, `${ROTATIONS} rotations`, 40_000, 250);
    await new Promise((r) => setTimeout(r, 1500));
    const end = Date.now() / 1000;
    const window = Math.floor(end - start);

    const range = await prometheus.query(`/api/v1/query_range?query=up&start=${start}&end=${end}&step=1`);
    expect(range.result[0].values.filter(([, v]: [number, string]) => v !== '1')).toEqual([]);
    const count = await prometheus.query(`/api/v1/query?query=${encodeURIComponent(`count_over_time(up[${window}s])`)}&time=${end}`);
    expect(Number(count.result[0].value[1])).toBeGreaterThanOrEqual(window - 2);
    const targets = await prometheus.query('/api/v1/targets');
    expect(targets.activeTargets[0]).toMatchObject({ health: 'up', lastError: '' });
    const verifications = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_verifications_total');
    for (const result of ['revoked', 'expired', 'unknown', 'malformed', 'missing', 'insufficient_scope']) {
      expect(verifications).not.toMatch(new RegExp(`result="${result}"\\} [1-9]`));
    }

    // Each rotation: delivered, then confirmed by use, then the old key revoked.
    const history = JSON.parse((await runCli(['-o', 'json', 'binding', 'history', 'certctl-prometheus'], env)).stdout);
    const done = history.filter((r: any) => r.step === 'done' && r.reason === 'scheduled');
    expect(done.length).toBeGreaterThanOrEqual(ROTATIONS);
    for (const r of done) {
      const [oldToken, newToken] = await Promise.all([s.api('GET', `/api/v1/tokens/${r.oldTokenId}`), s.api('GET', `/api/v1/tokens/${r.newTokenId}`)]);
      expect(oldToken.body.state).toBe('revoked');
      expect(oldToken.body.revokeReason).toContain(`replaced by ${r.newTokenId}`);
      expect(Date.parse(newToken.body.lastUsed.at)).toBeGreaterThanOrEqual(Date.parse(r.deliveredAt)); // seen in use…
      expect(Date.parse(r.confirmedAt)).toBeGreaterThanOrEqual(Date.parse(r.deliveredAt));
      expect(Date.parse(oldToken.body.revokedAt)).toBeGreaterThanOrEqual(Date.parse(r.confirmedAt)); // …before the old one went
    }
    expect((await s.api('GET', `/api/v1/tokens/${firstToken.slice(4, 16)}`)).body.state).toBe('revoked');

    // Between rotations the Secret and the file hold the same current key (a further rotation may be
    // mid-delivery right now, so wait for a moment with none in flight); the Secret is labelled and
    // never carries a secret in its metadata.
    let current = '';
    await waitFor(async () => {
      const before = (await s.api('GET', '/api/v1/bindings/certctl-prometheus')).body;
      current = readFileSync(tokenFile, 'utf8').trim();
      const inSecret = k8s.secretValue('certctl', 'certctl-prometheus-key', 'api-key');
      const after = (await s.api('GET', '/api/v1/bindings/certctl-prometheus')).body;
      return !before.inFlight && !after.inFlight && inSecret === current;
    }, 'the Secret and the file to agree between rotations', 15_000, 100);
    rememberSecret(current);
    const secret = k8s.get('secrets', 'certctl', 'certctl-prometheus-key')!;
    expect(secret.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'tokenwarden', 'tokenwarden.dev/binding': 'certctl-prometheus' });
    expect(secret.metadata.annotations['tokenwarden.dev/token-id']).toBe(current.slice(4, 16));
  }, 60_000);

  it("the page's ServiceMonitor references the Secret and key the binding writes; deploy/kubernetes ships one with bearerTokenSecret", () => {
    const sm = recipeYaml(PAGE, 'servicemonitor');
    new ServiceMonitor(sm).validate();
    const sink = recipeYaml(PAGE, 'binding').sinks.find((x: any) => x.kind === 'kubernetes-secret');
    expect(sm.metadata.namespace).toBe(sink.namespace);
    expect(sm.spec.endpoints[0].bearerTokenSecret).toEqual({ name: sink.name, key: sink.key });
    const shipped = parse(readFileSync('deploy/kubernetes/servicemonitor.yaml', 'utf8'));
    expect(shipped.kind).toBe('ServiceMonitor');
    expect(shipped.spec.endpoints[0].bearerTokenSecret).toMatchObject({ name: expect.any(String), key: expect.any(String) });
  });

  it("doctor explains the troubleshooting section's cases: wrong key, 401 (revoked key), 403 (no metrics.read)", async () => {
    const url = `${s.url}/metrics`;
    const doctor = async (replace: Record<string, string> = {}) => {
      const [args] = recipeCommands(PAGE, 'doctor', { 'https://certctl.your-org.example:8443/api/v1/metrics/prometheus': url, ...replace });
      const r = await runCli(args!, env);
      expect(r.stdout + r.stderr).not.toContain(firstToken.slice(17));
      return r;
    };
    // Re-applied with an hour's lifetime, so no rotation rewrites the Secret while keys are planted in it.
    const longer = recipeBlock(PAGE, 'binding', { 'lifetime: 7d': 'lifetime: 1h', 'quiet: 2m': 'quiet: 1500ms', 'grace: 1m': 'grace: 500ms', '/etc/prometheus/secrets/certctl.token': tokenFile });
    writeFileSync(join(dir, 'certctl-prometheus-1h.yaml'), longer);
    expect((await runCli(['binding', 'apply', '-f', join(dir, 'certctl-prometheus-1h.yaml')], env)).code).toBe(0);
    await waitFor(async () => {
      const b = (await s.api('GET', '/api/v1/bindings/certctl-prometheus')).body;
      return b.state === 'active' && !b.inFlight && Date.parse(b.expiresAt) - Date.now() > 30 * 60_000;
    }, 'the rotation to the 1-hour key', 20_000, 200);
    rememberSecret(readFileSync(tokenFile, 'utf8').trim());
    // Keys are planted in a copy of the Secret: the binding's own Secret is healed within seconds when it stops holding a valid key.
    const plant = (value: string) => k8s.seed('secrets', { metadata: { name: 'certctl-prometheus-key-copy', namespace: 'certctl' }, stringData: { 'api-key': value } });
    const copy = { 'certctl/certctl-prometheus-key#api-key': 'certctl/certctl-prometheus-key-copy#api-key' };

    const works = await doctor();
    expect(works.code, works.stdout + works.stderr).toBe(0);
    expect(works.stdout).toContain('(from Kubernetes Secret key certctl/certctl-prometheus-key#api-key)');
    expect(works.stdout).toContain('WORKS');

    const wrongKey = await doctor({ '#api-key': '#token' });
    expect(wrongKey.code).toBe(3);
    expect(wrongKey.stdout).toContain('Secret "certctl/certctl-prometheus-key" has no key "token"; it has "api-key"');

    plant(firstToken); // a stale copy of a key that rotation has revoked
    const revoked = await doctor(copy);
    expect(revoked.code).toBe(3);
    expect(revoked.stdout).toContain(`REFUSED (401, revoked): token ${firstToken.slice(4, 16)}`);
    expect(revoked.stdout).toContain('rotated: replaced by');
    expect(revoked.stdout).toContain('the consumer still holds the revoked one: check that it re-reads its Secret or file');
    expect(revoked.stdout).toMatch(/the endpoint refused the token \(401, invalid_token\)/);

    const noScope = await s.api('POST', '/api/v1/actors', { name: 'bot-certctl-auditor', kind: 'service', roles: ['auditor'] });
    expect(noScope.status).toBe(201);
    const minted = await s.api('POST', '/api/v1/tokens', { actor: 'bot-certctl-auditor', name: 'not-for-metrics', scopes: ['audit.read'] });
    plant(minted.body.token);
    const forbidden = await doctor(copy);
    expect(forbidden.code).toBe(3);
    expect(forbidden.stdout).toContain('FORBIDDEN (403, insufficient_scope)');
    expect(forbidden.stdout).toContain('the token was minted without "metrics.read" (the roles admin, metrics-read, operator grant it)');
  }, 40_000);
});
