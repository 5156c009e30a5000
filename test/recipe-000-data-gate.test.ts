import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { runCli } from './support/cli.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { type ServeProcess, spawnServe } from './support/process.js';
import { type PrometheusProcess, startPrometheus } from './support/prometheus.js';
import { recipeBlock, recipeYaml } from './support/recipes.js';
import { FakeUpstream, type GatedExporter, startGatedExporter } from './support/upstream.js';

/**
 * docs/recipes/000-data-gate.md, executed: the page's binding runs in `tokenwarden serve --config`
 * (its own process, `npm run build` first) against a CPD-style upstream whose tokens live 12 s;
 * it fills a file and a Secret (Kubernetes API emulator); a real Prometheus scrapes, with the
 * page's `credentials_file` scrape config, an exporter that accepts only unexpired upstream
 * tokens. Across several lifetimes and a login outage, no scrape fails.
 */
const PAGE = 'docs/recipes/000-data-gate.md';
const LIFETIME_S = 12;
let up: FakeUpstream;
let k8s: KubernetesEmulator;
let serve: ServeProcess;
let exporter: GatedExporter;
let prometheus: PrometheusProcess;
let dir: string;
let tokenFile: string;
let cli: Record<string, string>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dir = tempDir('recipe-000');
  tokenFile = join(dir, 'token');
  up = await FakeUpstream.start({ lifetimeSeconds: LIFETIME_S });
  k8s = await startKubernetesEmulator({ namespaces: ['default', 'datagate'] });

  // The page's configuration, as written, plus only the harness: where to listen and store.
  const config = recipeYaml(PAGE, 'tokenwarden', {
    'https://cpd-cpd-instance.apps.example.com': up.url,
    '/var/run/prometheus-token/token': tokenFile,
  });
  Object.assign(config, { listen: { host: '127.0.0.1', port: 0 }, store: { url: join(dir, 'data', 'tokenwarden.db') }, delivery: { interval: '250ms' } });
  writeFileSync(join(dir, 'tokenwarden.yaml'), stringify(config));
  const bootstrapFile = join(dir, 'admin.token');
  serve = await spawnServe(['--config', join(dir, 'tokenwarden.yaml'), '--bootstrap-token-file', bootstrapFile], {
    CPD_USERNAME: up.username,
    CPD_PASSWORD: up.password,
    KUBECONFIG: k8s.writeKubeconfig({ dir }),
  });
  cli = { TOKENWARDEN_SERVER: serve.url, TOKENWARDEN_TOKEN: rememberSecret(readFileSync(bootstrapFile, 'utf8').trim()) };
  await waitFor(async () => existsSync(tokenFile), 'the first login to reach the file', 15_000, 100);

  exporter = await startGatedExporter(up, '# TYPE datagate_table_sync_up gauge\ndatagate_table_sync_up 1\n');

  const promConfig = recipeYaml(PAGE, 'prometheus', { '/var/run/prometheus-token/token': tokenFile, 'datagate-metrics.datagate.svc:9100': exporter.target });
  promConfig.global = { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' };
  prometheus = await startPrometheus({ dir, config: promConfig, logName: 'prometheus-recipe-000' });
  await waitFor(async () => (await prometheus.instant('up{job="datagate-table-sync-metrics"}'))[0]?.value[1] === '1', 'the first successful scrape', 30_000, 200);
}, 90_000);

afterAll(async () => {
  await prometheus?.stop();
  await serve?.stop();
  await exporter?.close();
  await up?.close();
  await k8s?.stop();
});

describe('recipe 000 (Data Gate): an upstream login keeps Prometheus scraping', () => {
  it('no failed scrape across several 12-second tokens and a login outage; the Secret holds the same live token', async () => {
    const started = Date.now();
    const loginsBefore = up.issued;

    await sleep(8_000);
    // A login outage spanning the next refresh: the token just issued must carry it.
    const mark = up.issued;
    await waitFor(async () => up.issued > mark, 'a fresh login', 15_000, 20);
    await sleep(LIFETIME_S * 500 - 500);
    up.mode = '500';
    const attemptsBefore = up.attempts;
    // The outage lasts at least 2 s and until a refresh has actually hit it (timers on a busy machine drift).
    await Promise.all([sleep(2_000), waitFor(async () => up.attempts > attemptsBefore, 'a login attempt during the outage', 8_000, 20)]);
    const failedLogins = up.attempts - attemptsBefore;
    up.mode = 'ok';
    await sleep(9_000);
    const seconds = Math.round((Date.now() - started) / 1000);

    expect(failedLogins).toBeGreaterThanOrEqual(1);
    expect(up.issued - loginsBefore).toBeGreaterThanOrEqual(Math.floor(seconds / LIFETIME_S) + 1);
    expect(exporter.scrapes.rejected).toBe(0);
    expect(exporter.scrapes.accepted).toBeGreaterThanOrEqual(seconds - 3);
    const [min] = await prometheus.instant(`min_over_time(up{job="datagate-table-sync-metrics"}[${seconds}s])`);
    const [count] = await prometheus.instant(`count_over_time(up{job="datagate-table-sync-metrics"}[${seconds}s])`);
    expect(min.value[1]).toBe('1');
    expect(Number(count.value[1])).toBeGreaterThanOrEqual(seconds - 3);

    // The runbook's Secret holds the same live token as the file.
    const fileToken = rememberSecret(readFileSync(tokenFile, 'utf8').trim());
    expect(await up.accepts(fileToken)).toBe(true);
    await waitFor(async () => k8s.secretValue('datagate', 'prometheus-bearer-token', 'token') === fileToken, 'the Secret to match the file', 5_000);
    expect(k8s.get('secrets', 'datagate', 'prometheus-bearer-token')!.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'tokenwarden' });

    // What the operator sees: the binding healthy again, the outage counted for the shipped alert.
    const list = await runCli(['binding', 'list'], cli);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/datagate-prometheus\s+cpd\s+upstream\s+active\s+up_\S{12}/);
    expect(list.stdout).toContain('secret:datagate/prometheus-bearer-token#token');
    const show = JSON.parse((await runCli(['-o', 'json', 'binding', 'show', 'datagate-prometheus'], cli)).stdout);
    expect(show).toMatchObject({ healthy: true, lastError: null, source: { kind: 'http-login' } });
    const metrics = await (await fetch(`${serve.url}/metrics`, { headers: { authorization: `Bearer ${cli.TOKENWARDEN_TOKEN}` } })).text();
    expect(metrics).toMatch(/tokenwarden_source_refresh_failures_total\{binding="datagate-prometheus",source="http-login"\} [1-9]/);
    expect(metrics).toContain('tokenwarden_binding_healthy{binding="datagate-prometheus"} 1');
    expect(readFileSync(serve.stdoutFile, 'utf8')).not.toContain(up.password);
  }, 60_000);

  it("the runbook's detection query is the shipped alert TokenwardenUpstreamRefreshFailing", () => {
    const rules = parse(readFileSync('deploy/prometheus/tokenwarden-rules.yml', 'utf8')) as { groups: { rules: { alert?: string; expr: string }[] }[] };
    const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === 'TokenwardenUpstreamRefreshFailing');
    expect(rule?.expr).toMatch(/increase\(tokenwarden_source_refresh_failures_total\[10m\]\)\) > 0/);
    // The page names it, and its binding is what the metric is labelled with.
    const page = readFileSync(PAGE, 'utf8');
    expect(page).toContain('TokenwardenUpstreamRefreshFailing');
    expect(recipeBlock(PAGE, 'tokenwarden')).toContain('name: datagate-prometheus');
  });
});
