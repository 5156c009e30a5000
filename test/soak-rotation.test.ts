import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { rememberSecret, tempDir } from './support/output.js';
import { freePort } from './support/ports.js';
import { waitFor } from './support/wait.js';
import { type ServeProcess, spawnServe } from './support/process.js';
import { type PrometheusProcess, everySecondConfig, firstGoodScrape, startPrometheus, upSamples } from './support/prometheus.js';
import { callApi } from './support/server.js';

/**
 * Soak (issue 15, "Done means"): a real Prometheus scrapes the gated /metrics of a real
 * `tokenwarden serve` process every second through `credentials_file` on a file sink. The
 * binding's token lives 20 s and is rotated at a fifth of that, usage-confirmed, ≥ 30 times; the
 * process is SIGKILLed and started again on the same data dir twice during the run. No scrape
 * may fail and no verification may be refused, except in the seconds the process is down.
 * Run `npm run build` first. About 2½ minutes.
 */
const ROTATIONS = 30;
const KILL_AFTER = [10, 20];
let dir: string;
let args: string[];
let serve: ServeProcess;
let prometheus: PrometheusProcess;
let admin: string;
const env = () => ({ TOKENWARDEN_SERVER: serve.url, TOKENWARDEN_TOKEN: admin });

/** The binding's rotations, newest first: from the API while polling, from `binding history` for the verdict. */
async function history(viaCli = false): Promise<any[]> {
  if (!viaCli) return (await callApi(serve.url, 'GET', '/api/v1/bindings/prometheus/history?limit=200', undefined, admin)).body.items;
  const res = await runCli(['-o', 'json', 'binding', 'history', 'prometheus', '--limit', '200'], env());
  if (res.code !== 0) throw new Error(`binding history: ${res.stderr}`);
  return JSON.parse(res.stdout);
}
const succeeded = (rows: any[]) => rows.filter((r) => r.step === 'done' && (r.outcome ?? 'success') === 'success');

beforeAll(async () => {
  dir = tempDir('soak-rotation');
  const config = join(dir, 'tokenwarden.yaml');
  // The default leaseTtl (15 s): the restarted process takes over its killed predecessor's lease at once.
  mkdirSync(join(dir, 'data'));
  writeFileSync(config, `delivery: { fileRoots: [${dir}], interval: 200ms }\nverify: { failureLimit: 100000 }\n`);
  args = ['--port', String(await freePort()), '--store', join(dir, 'data', 'tw.db'), '--config', config, '--bootstrap-token-file', join(dir, 'admin.token')];
  serve = await spawnServe(args);
  admin = rememberSecret(readFileSync(join(dir, 'admin.token'), 'utf8').trim());
  expect((await callApi(serve.url, 'POST', '/api/v1/actors', { name: 'bot-prometheus', kind: 'service', roles: ['metrics-read'] }, admin)).status).toBe(201);
  const tokenFile = join(dir, 'prometheus.token');
  const created = await callApi(
    serve.url,
    'POST',
    '/api/v1/bindings',
    {
      name: 'prometheus',
      actor: 'bot-prometheus',
      scopes: ['metrics.read'],
      lifetime: '20s',
      sinks: [{ kind: 'file', path: tokenFile }],
      rotation: { at: 0.2, jitter: 0.05, grace: '300ms', confirm: 'usage', quiet: '1200ms', confirmTimeout: '10s' },
    },
    admin,
  );
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  rememberSecret(readFileSync(tokenFile, 'utf8').trim());
  prometheus = await startPrometheus({
    dir,
    logName: 'prometheus-soak-rotation',
    config: everySecondConfig([{ job: 'tokenwarden', target: new URL(serve.url).host, credentialsFile: tokenFile }]),
  });
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  await serve?.stop();
});

describe('soak: real Prometheus across rotations of a 20 s token and two SIGKILLs of the server', () => {
  it(`no failed scrape and no refused token outside the seconds the server is down, across ${ROTATIONS} rotations`, async () => {
    const start = await firstGoodScrape(prometheus, 'tokenwarden');
    const base = succeeded(await history()).length;
    const down: [number, number][] = [];
    for (const after of [...KILL_AFTER, ROTATIONS]) {
      await waitFor(async () => succeeded(await history()).length >= base + after, `${after} rotations`, 150_000, 500);
      if (after === ROTATIONS) break;
      const killed = Date.now() / 1000;
      const exit = new Promise((r) => serve.child.once('exit', r));
      serve.child.kill('SIGKILL');
      await exit;
      serve = await spawnServe(args);
      down.push([killed, Date.now() / 1000]);
    }
    await new Promise((r) => setTimeout(r, 1500)); // let the last scrape land
    const end = Date.now() / 1000;

    // Every scrape Prometheus made: failed ones only while the process was down (a scrape
    // started then is reported at its start, up to its 1 s timeout before the restart).
    const samples = await upSamples(prometheus, 'tokenwarden', start, end);
    expect(samples.length).toBeGreaterThanOrEqual(Math.floor(end - start) - 5);
    const whileDown = (t: number) => down.some(([from, to]) => t >= from - 1 && t <= to + 1);
    const failed = samples.filter(([, v]) => v !== '1');
    console.log(`soak: ${samples.length} scrapes in ${Math.round(end - start)} s, ${failed.length} failed, down ${down.map(([a, b]) => `${(b - a).toFixed(1)} s`).join(' + ')}`);
    expect(failed.filter(([t]) => !whileDown(t))).toEqual([]);
    expect(failed.length).toBeLessThanOrEqual(down.reduce((n, [from, to]) => n + Math.ceil(to - from) + 2, 0));

    // The server's own count: not one token was refused (revoked, expired, unknown...) in any of the three processes.
    const refused = await prometheus.query(
      `/api/v1/query?query=${encodeURIComponent(`max_over_time(tokenwarden_verifications_total{result!="ok"}[${Math.ceil(end - start)}s])`)}&time=${end}`,
    );
    expect(refused.result.filter((r: any) => r.value[1] !== '0')).toEqual([]);
    const ok = await prometheus.instant(`tokenwarden_verifications_total{result="ok"}`);
    expect(Number(ok[0]?.value[1] ?? 0)).toBeGreaterThan(0);

    const done = succeeded(await history(true));
    expect(done.length).toBeGreaterThanOrEqual(base + ROTATIONS);
    expect(new Set(done.map((r) => r.newTokenId)).size).toBe(done.length);
    const binding = (await callApi(serve.url, 'GET', '/api/v1/bindings/prometheus', undefined, admin)).body;
    expect(binding).toMatchObject({ healthy: true, lastError: null });
  }, 240_000);
});
