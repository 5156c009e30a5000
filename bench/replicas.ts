import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rememberSecret, tempDir } from '../test/support/output.js';
import { freePort } from '../test/support/ports.js';
import { waitFor } from '../test/support/wait.js';
import { startPostgres } from '../test/support/postgres.js';
import { type ServeProcess, spawnServe } from '../test/support/process.js';
import { callApi } from '../test/support/server.js';

/**
 * `node --import tsx bench/replicas.ts` (after `npm run build`): REPLICAS tokenwarden processes
 * (default 3) on one PostgreSQL on loopback. Prints how long a revocation takes to reach every
 * replica (ROUNDS rounds, default 20, measured from the revoke's commit), then how the replicas
 * ride through a PostgreSQL restart.
 */
const REPLICAS = Number(process.env.REPLICAS ?? 3);
const ROUNDS = Number(process.env.ROUNDS ?? 20);

const pg = await startPostgres({ name: 'bench-replicas' });
const url = await pg.createDatabase('bench');
const dir = tempDir('bench-replicas');
const env = { TOKENWARDEN_VERIFY_CACHE_TTL: '10m', TOKENWARDEN_VERIFY_FAILURE_LIMIT: '0', TOKENWARDEN_DELIVERY_KEY_FILE: join(dir, 'delivery.key') };
let replicas: ServeProcess[] = [];

async function auth(base: string, token: string): Promise<number> {
  const res = await fetch(`${base}/auth?scope=metrics.read`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

try {
  const startedAt = performance.now();
  const ports = await Promise.all(Array.from({ length: REPLICAS }, () => freePort()));
  replicas = await Promise.all(ports.map((port, i) => spawnServe(['--port', String(port), '--store', url, '--bootstrap-token-file', join(dir, `boot-${i}.token`)], env)));
  // serve prints "listening" a moment before it writes the bootstrap file
  const bootFile = await waitFor(async () => ports.map((_, i) => join(dir, `boot-${i}.token`)).find((f) => existsSync(f) && readFileSync(f, 'utf8').trim()), 'the bootstrap token', 10_000, 20);
  const admin = rememberSecret(readFileSync(bootFile, 'utf8').trim());
  const startMs = performance.now() - startedAt;
  await callApi(replicas[0].url, 'POST', '/api/v1/actors', { name: 'bot-bench', kind: 'service', roles: ['metrics-read'] }, admin);

  const latencies: number[] = [];
  const requests: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const minted = await callApi(replicas[round % REPLICAS].url, 'POST', '/api/v1/tokens', { actor: 'bot-bench', name: `b-${round}`, scopes: ['metrics.read'] }, admin);
    const token = minted.body.token as string;
    for (const r of replicas) if ((await auth(r.url, token)) !== 200) throw new Error('fresh token refused');
    const sent = performance.now();
    await callApi(replicas[(round + 1) % REPLICAS].url, 'DELETE', `/api/v1/tokens/${minted.body.id}`, undefined, admin);
    const committed = performance.now();
    requests.push(committed - sent);
    const each = await Promise.all(
      replicas.map(async (r) => {
        await waitFor(async () => (await auth(r.url, token)) === 401, 'revocation', 5000, 2);
        return performance.now() - committed;
      }),
    );
    latencies.push(Math.max(...each));
  }

  // PostgreSQL restart, with a revoked token in every cache
  const t = await callApi(replicas[0].url, 'POST', '/api/v1/tokens', { actor: 'bot-bench', name: 'restart', scopes: ['metrics.read'] }, admin);
  for (const r of replicas) await auth(r.url, t.body.token);
  await callApi(replicas[0].url, 'DELETE', `/api/v1/tokens/${t.body.id}`, undefined, admin);
  await new Promise((r) => setTimeout(r, 300));
  const stopAt = performance.now();
  await pg.stop();
  for (const r of replicas) await waitFor(async () => (await fetch(`${r.url}/readyz`)).status === 503, 'not ready', 10_000, 20);
  const notReady = performance.now() - stopAt;
  const revokedDuringOutage = await Promise.all(replicas.map((r) => auth(r.url, t.body.token)));
  await pg.start();
  const startAt = performance.now();
  for (const r of replicas) await waitFor(async () => (await fetch(`${r.url}/readyz`)).status === 200, 'ready', 20_000, 20);
  const ready = performance.now() - startAt;

  const f = (ms: number) => `${ms.toFixed(1)} ms`;
  const rows: [string, string][] = [
    ['replicas', String(REPLICAS)],
    ['start (all replicas listening, started together)', f(startMs)],
    [`revocation → all replicas refuse, p50 (${ROUNDS} rounds, from commit)`, f(pct(latencies, 50))],
    ['revocation → all replicas refuse, p95', f(pct(latencies, 95))],
    ['revocation → all replicas refuse, max', f(Math.max(...latencies))],
    ['revoke request itself, p50', f(pct(requests, 50))],
    ['PostgreSQL stopped → every /readyz 503', f(notReady)],
    ['revoked token during the outage', revokedDuringOutage.join(', ')],
    ['PostgreSQL started → every /readyz 200', f(ready)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
} finally {
  await Promise.all(replicas.map((r) => r.stop()));
  await pg.destroy();
}
