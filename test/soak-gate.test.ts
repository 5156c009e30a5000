import { readFileSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rememberSecret, tempDir } from './support/output.js';
import { freePort } from './support/ports.js';
import { type ServeProcess, spawnGate, spawnServe } from './support/process.js';
import { type PrometheusProcess, everySecondConfig, firstGoodScrape, startPrometheus, upSamples } from './support/prometheus.js';
import { callApi } from './support/server.js';

/**
 * Soak: a real Prometheus scrapes an exporter through `tokenwarden gate --server` (built CLI)
 * every second for about a minute, the gate asking a real `tokenwarden serve` process. Every
 * scrape must pass: the gate re-asks the server whenever its 5 s positive cache lapses, which is
 * when a server with Node's 5 s keep-alive default closes the idle socket the gate reuses
 * (issue 15: 3 scrapes in 60 got 503 "socket hang up"). Run `npm run build` first.
 */
const SCRAPES = 60;
let dir: string;
let serve: ServeProcess;
let gate: ServeProcess;
let prometheus: PrometheusProcess;
let exporter: Server;
let exporterHits = 0;

beforeAll(async () => {
  dir = tempDir('soak-gate');
  exporter = createServer((_req, res) => {
    exporterHits++;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end('# HELP soak_up up\n# TYPE soak_up gauge\nsoak_up 1\n');
  });
  await new Promise<void>((r) => exporter.listen(0, '127.0.0.1', r));
  const exporterUrl = `http://127.0.0.1:${(exporter.address() as AddressInfo).port}`;

  const config = join(dir, 'tokenwarden.yaml');
  writeFileSync(config, 'verify: { failureLimit: 100000 }\n');
  serve = await spawnServe(['--port', '0', '--store', join(dir, 'tw.db'), '--config', config, '--bootstrap-token-file', join(dir, 'admin.token')]);
  const admin = rememberSecret(readFileSync(join(dir, 'admin.token'), 'utf8').trim());
  expect((await callApi(serve.url, 'POST', '/api/v1/actors', { name: 'bot-prometheus', kind: 'service', roles: ['metrics-read'] }, admin)).status).toBe(201);
  const minted = await callApi(serve.url, 'POST', '/api/v1/tokens', { actor: 'bot-prometheus', name: 'soak', scopes: ['metrics.read'], expiresIn: '1h' }, admin);
  expect(minted.status, JSON.stringify(minted.body)).toBe(201);
  const tokenFile = join(dir, 'prometheus.token');
  writeFileSync(tokenFile, minted.body.token, { mode: 0o600 });

  gate = await spawnGate(['--server', serve.url, '--upstream', exporterUrl, '--scope', 'metrics.read', '--listen', `127.0.0.1:${await freePort()}`]);
  prometheus = await startPrometheus({
    dir,
    logName: 'prometheus-soak-gate',
    config: everySecondConfig([{ job: 'gated', target: new URL(gate.url).host, credentialsFile: tokenFile }]),
  });
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  await gate?.stop();
  await serve?.stop();
  await new Promise((r) => exporter?.close(r));
});

describe('soak: real Prometheus through `tokenwarden gate --server`', () => {
  it(`answers every one of ${SCRAPES} one-second scrapes while the server is up (no 503)`, async () => {
    const start = await firstGoodScrape(prometheus, 'gated');
    const hitsBefore = exporterHits;
    await new Promise((r) => setTimeout(r, (SCRAPES + 1) * 1000));
    const end = Date.now() / 1000;

    const samples = await upSamples(prometheus, 'gated', start, end);
    const failed = samples.filter(([, v]) => v !== '1');
    const gateLog = readFileSync(gate.stdoutFile, 'utf8');
    const refusals = gateLog.split('\n').filter((l) => l.includes('verification failed'));
    console.log(`soak: ${samples.length} scrapes through the gate, ${samples.filter(([, v]) => v !== '1').length} failed, ${refusals.length} checks failed`);
    expect({ failed, refusals }).toEqual({ failed: [], refusals: [] });
    expect(samples.length).toBeGreaterThanOrEqual(SCRAPES - 2);
    expect(exporterHits - hitsBefore).toBeGreaterThanOrEqual(SCRAPES - 2);
    const target = (await prometheus.query('/api/v1/targets')).activeTargets[0];
    expect(target).toMatchObject({ health: 'up', lastError: '' });
  }, 120_000);
});
