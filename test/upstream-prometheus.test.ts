import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BIN } from './support/cli.js';
import { LOG_DIR, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { stopChild } from './support/process.js';
import { type PrometheusProcess, startPrometheus } from './support/prometheus.js';
import { FakeUpstream, type GatedExporter, startGatedExporter } from './support/upstream.js';

/**
 * Seed 000 end to end, with real parts: a CPD-style upstream issues 6-second JWTs;
 * `tokenwarden agent` (its own process) logs in with http-login and keeps a file fresh; a real
 * Prometheus scrapes, through `authorization.credentials_file`, an exporter that accepts only
 * the upstream's unexpired tokens. Across several lifetimes, and through an upstream outage,
 * no scrape fails.
 */
const LIFETIME_S = 6;
let up: FakeUpstream;
let exporter: GatedExporter;
let agent: ChildProcess;
let prometheus: PrometheusProcess;
let dir: string;
let agentLog: string;

function startLogged(cmd: string, args: string[], env: Record<string, string>, log: string): ChildProcess {
  const out = createWriteStream(log);
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

beforeAll(async () => {
  dir = tempDir('upstream-prom');
  up = await FakeUpstream.start({ lifetimeSeconds: LIFETIME_S });

  exporter = await startGatedExporter(up, '# TYPE demo_ready gauge\ndemo_ready 1\n');

  writeFileSync(join(dir, 'password'), `${up.password}\n`, { mode: 0o600 });
  const tokenFile = join(dir, 'prometheus-bearer-token');
  writeFileSync(
    join(dir, 'agent.yaml'),
    stringify({
      state: { file: join(dir, 'agent-state.json') },
      bindings: [
        {
          name: 'prometheus-cpd',
          source: {
            kind: 'http-login',
            url: `${up.url}/icp4d-api/v1/authorize`,
            body: { username: { env: 'CPD_USERNAME' }, password: { file: join(dir, 'password') } },
            tokenPath: '.token',
            timeout: '1s',
          },
          refresh: { at: 0.4, jitter: 0.05, retryInitial: '250ms', retryMax: '1s' },
          sinks: [{ kind: 'file', path: tokenFile }],
        },
      ],
    }),
  );
  agentLog = join(LOG_DIR, `agent-e2e-${process.pid}.log`);
  agent = startLogged(process.execPath, [BIN, 'agent', '--config', join(dir, 'agent.yaml')], { CPD_USERNAME: up.username, TOKENWARDEN_LOG_LEVEL: 'debug' }, agentLog);
  await waitFor(async () => {
    if (agent.exitCode !== null) throw new Error(`agent exited: ${readFileSync(agentLog, 'utf8')}`);
    return existsSync(tokenFile);
  }, 'the agent to write the token file', 15_000);

  prometheus = await startPrometheus({
    dir,
    logName: 'prometheus-upstream',
    config: {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      scrape_configs: [
        { job_name: 'cpd-exporter', authorization: { type: 'Bearer', credentials_file: tokenFile }, static_configs: [{ targets: [exporter.target] }] },
      ],
    },
  });
  await waitFor(async () => (await prometheus.instant('up{job="cpd-exporter"}'))[0]?.value[1] === '1', 'the first successful scrape', 20_000, 200);
}, 60_000);

afterAll(async () => {
  await prometheus?.stop();
  await stopChild(agent);
  await exporter?.close();
  await up?.close();
});

describe('seed 000: Prometheus keeps scraping through token expiry and an upstream outage', () => {
  it('no failed scrape across several 6-second lifetimes, the last good token carrying an outage', async () => {
    const started = Date.now();
    const loginsBefore = up.issued;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    await sleep(7_000); // more than a whole lifetime of normal refreshes

    // Outage: right after a fresh login, the upstream answers 500 for 3 s, spanning the next refresh.
    const mark = up.issued;
    await waitFor(async () => up.issued > mark, 'a fresh login', 10_000, 20);
    await sleep(300);
    up.mode = '500';
    const attemptsBefore = up.attempts;
    await sleep(3_000);
    const failedAttempts = up.attempts - attemptsBefore;
    up.mode = 'ok';

    await sleep(8_000); // recovery, and more lifetimes
    const seconds = Math.round((Date.now() - started) / 1000);

    expect(failedAttempts).toBeGreaterThanOrEqual(2); // the agent retried during the outage
    expect(up.issued - loginsBefore).toBeGreaterThanOrEqual(Math.floor(seconds / LIFETIME_S) + 1); // several lifetimes
    expect(exporter.scrapes.rejected).toBe(0);
    expect(exporter.scrapes.accepted).toBeGreaterThanOrEqual(seconds - 3);

    // Prometheus's own view: every scrape in the window was up, and the target is healthy.
    const window = `${seconds}s`;
    const [min] = await prometheus.instant(`min_over_time(up{job="cpd-exporter"}[${window}])`);
    const [count] = await prometheus.instant(`count_over_time(up{job="cpd-exporter"}[${window}])`);
    expect(min.value[1]).toBe('1');
    expect(Number(count.value[1])).toBeGreaterThanOrEqual(seconds - 3);
    const targets = (await prometheus.query('/api/v1/targets')) as { activeTargets: { health: string; lastError: string }[] };
    expect(targets.activeTargets[0]).toMatchObject({ health: 'up', lastError: '' });

    // The agent saw the outage, said so without secrets, and is healthy again.
    const log = readFileSync(agentLog, 'utf8');
    expect(log).toContain('upstream refresh failed');
    expect(log).toContain('the last good token stays in the sinks until it expires');
    expect(log).not.toContain(up.password);
    const state = JSON.parse(readFileSync(join(dir, 'agent-state.json'), 'utf8'));
    expect(state.bindings['prometheus-cpd'].refresh).toMatchObject({ healthy: true, failures: 0 });
    expect(JSON.stringify(state)).not.toMatch(/eyJ/);
  }, 45_000);
});
