import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rememberSecret, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { type PrometheusProcess, everySecondConfig, startPrometheus } from './support/prometheus.js';
import { type TestServer, startTestServer } from './support/server.js';

/**
 * A real Prometheus scrapes tokenwarden's own gated /metrics every second with
 * `authorization.credentials_file` pointing at a file sink. The binding's token lives 9 s and
 * is rotated at about a third of that, usage-confirmed (Prometheus is seen using the new token
 * and the old one has gone quiet before it is revoked). Across 20 rotations every scrape must
 * succeed: `up` never 0, no missing sample, no 401 anywhere.
 */
const ROTATIONS = 20;
let s: TestServer;
let prometheus: PrometheusProcess;
let dir: string;

const successes = async () => {
  const text = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_rotations_total');
  return Number(/tokenwarden_rotations_total\{binding="prometheus",outcome="success"\} (\d+)/.exec(text)?.[1] ?? 0);
};

beforeAll(async () => {
  dir = tempDir('prom-rotation');
  s = await startTestServer({ config: { verify: { failureLimit: 100000 }, delivery: { fileRoots: [dir] } }, delivery: { intervalMs: 200, pollMs: 200, retryBaseMs: 500 } });
  expect((await s.api('POST', '/api/v1/actors', { name: 'bot-prometheus', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
  const tokenFile = join(dir, 'prometheus.token');
  const created = await s.api('POST', '/api/v1/bindings', {
    name: 'prometheus',
    actor: 'bot-prometheus',
    scopes: ['metrics.read'],
    lifetime: '9s',
    sinks: [{ kind: 'file', path: tokenFile }],
    rotation: { at: 0.35, jitter: 0.05, grace: '300ms', confirm: 'usage', quiet: '1200ms', confirmTimeout: '20s' },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  rememberSecret(readFileSync(tokenFile, 'utf8').trim());

  const target = new URL(s.url).host;
  prometheus = await startPrometheus({
    dir,
    logName: 'prometheus-rotation',
    config: everySecondConfig([{ job: 'tokenwarden', target, credentialsFile: tokenFile }]),
  });
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  await s?.close();
});

describe('real Prometheus across rotations of its own bearer token (credentials_file on a file sink)', () => {
  it(`never misses a scrape across ${ROTATIONS} usage-confirmed rotations`, async () => {
    // The window starts with the first good scrape.
    await waitFor(async () => (await prometheus.query('/api/v1/query?query=up')).result.some((r: any) => r.value[1] === '1'), 'the first scrape', 30_000, 250);
    const base = await successes();
    const start = Date.now() / 1000;
    await waitFor(async () => (await successes()) >= base + ROTATIONS, `${ROTATIONS} rotations`, 100_000, 250);
    await new Promise((r) => setTimeout(r, 1500)); // let the last scrape land
    const end = Date.now() / 1000;
    const window = Math.floor(end - start);

    const range = await prometheus.query(`/api/v1/query_range?query=up&start=${start}&end=${end}&step=1`);
    const values: [number, string][] = range.result[0].values;
    expect(values.length).toBeGreaterThanOrEqual(window - 1);
    expect(values.filter(([, v]) => v !== '1')).toEqual([]);

    const at = `&time=${end}`;
    const min = await prometheus.query(`/api/v1/query?query=${encodeURIComponent(`min_over_time(up[${window}s])`)}${at}`);
    expect(min.result[0].value[1]).toBe('1');
    const count = await prometheus.query(`/api/v1/query?query=${encodeURIComponent(`count_over_time(up[${window}s])`)}${at}`);
    expect(Number(count.result[0].value[1])).toBeGreaterThanOrEqual(window - 2); // one sample a second: no gap

    const targets = await prometheus.query('/api/v1/targets');
    expect(targets.activeTargets).toHaveLength(1);
    expect(targets.activeTargets[0]).toMatchObject({ health: 'up', lastError: '' });

    // Not one request was refused: no revoked, expired or unknown token reached tokenwarden.
    const verifications = await s.tw.ctx.metrics.registry.getSingleMetricAsString('tokenwarden_verifications_total');
    for (const result of ['revoked', 'expired', 'unknown', 'malformed', 'missing']) {
      expect(verifications).not.toMatch(new RegExp(`result="${result}"\\} [1-9]`));
    }
    const ok = Number(/result="ok"\} (\d+)/.exec(verifications)?.[1]);
    expect(ok).toBeGreaterThanOrEqual(window - 2);

    const history = (await s.api('GET', '/api/v1/bindings/prometheus/history?limit=100')).body.items;
    const done = history.filter((r: any) => r.step === 'done' && r.reason === 'scheduled');
    expect(done.length).toBeGreaterThanOrEqual(ROTATIONS);
    expect(new Set(done.map((r: any) => r.newTokenId)).size).toBe(done.length);
    const b = (await s.api('GET', '/api/v1/bindings/prometheus')).body;
    expect(b).toMatchObject({ healthy: true, lastError: null });
  }, 150_000);
});
