import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rememberSecret, tempDir } from './support/output.js';
import { freePort } from './support/ports.js';
import { waitFor } from './support/wait.js';
import { type PostgresServer, startPostgres } from './support/postgres.js';
import { type ServeProcess, spawnServe } from './support/process.js';
import { callApi } from './support/server.js';
import { mintToken } from '../src/token/format.js';

/**
 * Three `tokenwarden serve` processes on one PostgreSQL on loopback (run `npm run build` first):
 * a revocation on one reaches every replica within a second, and a PostgreSQL restart under
 * load is survived without ever answering 200 for a revoked token. The second replica also
 * runs an authListen thread, which is held to the same rules as the replicas' own /auth.
 */
let pgServer: PostgresServer;
let replicas: ServeProcess[] = [];
let admin: string;
/** Every /auth there is: each replica's main port, and the authListen port of replica 1. */
let checkers: string[] = [];

beforeAll(async () => {
  pgServer = await startPostgres({ name: 'replicas' });
  const url = await pgServer.createDatabase('replicas');
  const dir = tempDir('replicas');
  const env = {
    // A cache far longer than the test: only the fan-out can make a replica drop a cached token.
    TOKENWARDEN_VERIFY_CACHE_TTL: '10m',
    // The load below sends revoked tokens on purpose; the per-source limit would answer 429.
    TOKENWARDEN_VERIFY_FAILURE_LIMIT: '0',
    TOKENWARDEN_DELIVERY_KEY_FILE: join(dir, 'delivery.key'),
    TOKENWARDEN_LOG_LEVEL: 'info',
  };
  const ports = await Promise.all([0, 1, 2].map(() => freePort()));
  const authPort = await freePort();
  // Started together, as a Deployment does: migrations and the first admin happen once.
  const started = await Promise.allSettled(
    ports.map((port, i) =>
      spawnServe(
        ['--port', String(port), '--store', url, '--bootstrap-token-file', join(dir, `boot-${i}.token`)],
        i === 1 ? { ...env, TOKENWARDEN_AUTH_LISTEN_PORT: String(authPort) } : env,
      ),
    ),
  );
  replicas = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason; // afterAll stops the ones that did start
  // serve prints "listening" a moment before it writes the bootstrap file
  const files = [0, 1, 2].map((i) => join(dir, `boot-${i}.token`));
  const written = await waitFor(async () => {
    const found = files.filter((f) => existsSync(f) && readFileSync(f, 'utf8').trim());
    return found.length > 0 && found;
  }, 'the bootstrap token', 10_000, 20);
  await new Promise((r) => setTimeout(r, 200));
  expect(files.filter((f) => existsSync(f))).toHaveLength(1);
  admin = rememberSecret(readFileSync(written[0], 'utf8').trim());
  checkers = [...replicas.map((r) => r.url), `http://127.0.0.1:${authPort}`];
  const actor = await callApi(replicas[0].url, 'POST', '/api/v1/actors', { name: 'bot-load', kind: 'service', roles: ['metrics-read'] }, admin);
  expect(actor.status).toBe(201);
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await pgServer?.destroy();
});

async function mint(on = 0): Promise<{ token: string; id: string }> {
  const res = await callApi(replicas[on].url, 'POST', '/api/v1/tokens', { actor: 'bot-load', name: `t-${Math.random().toString(36).slice(2, 10)}`, scopes: ['metrics.read'] }, admin);
  expect(res.status).toBe(201);
  return { token: res.body.token, id: res.body.id };
}

async function auth(base: string, token: string): Promise<number> {
  const res = await fetch(`${base}/auth?scope=metrics.read`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

async function readyz(base: string): Promise<number> {
  const res = await fetch(`${base}/readyz`);
  await res.arrayBuffer();
  return res.status;
}

/**
 * Revokes on one replica; returns how long after the revoke was committed (its response
 * arrived) each replica answered 401, and how long the revoke request itself took.
 */
async function revokeAndTime(token: { token: string; id: string }, on: number): Promise<{ replicas: number[]; request: number }> {
  for (const c of checkers) expect(await auth(c, token.token)).toBe(200); // cached everywhere
  const sent = performance.now();
  const revoked = await callApi(replicas[on].url, 'DELETE', `/api/v1/tokens/${token.id}`, undefined, admin);
  const committed = performance.now();
  expect(revoked.status).toBe(200);
  const times = await Promise.all(
    checkers.map(async (c) => {
      await waitFor(async () => (await auth(c, token.token)) === 401, `${c} to refuse the revoked token`, 3000, 5);
      return performance.now() - committed;
    }),
  );
  return { replicas: times, request: committed - sent };
}

describe('replicas on one PostgreSQL', () => {
  it('a revoke on one replica is refused by every replica within 1 s', async () => {
    const rounds: { replicas: number[]; request: number }[] = [];
    for (let round = 0; round < 3; round++) rounds.push(await revokeAndTime(await mint(round % 3), (round + 1) % 3));
    console.log(
      `revocation reached all 3 replicas and the authListen thread, per round: ${rounds
        .map((r) => `${Math.max(...r.replicas).toFixed(0)} ms after commit (revoke request ${r.request.toFixed(0)} ms)`)
        .join('; ')}`,
    );
    for (const r of rounds) expect(Math.max(...r.replicas)).toBeLessThan(1000);
  });

  it('taking a role away on one replica is enforced by every replica within 1 s, despite their caches; giving it back too', async () => {
    const token = await mint(1);
    for (const c of checkers) expect(await auth(c, token.token)).toBe(200); // cached everywhere for 10 minutes
    const within = async (status: number, what: string) => {
      const since = performance.now();
      await Promise.all(checkers.map((c) => waitFor(async () => (await auth(c, token.token)) === status, `${c} ${what}`, 3000, 5)));
      return performance.now() - since;
    };
    expect((await callApi(replicas[2].url, 'PATCH', '/api/v1/actors/bot-load', { roles: [] }, admin)).status).toBe(200);
    const taken = await within(403, 'to refuse the token once metrics-read is taken away');
    expect((await callApi(replicas[0].url, 'PATCH', '/api/v1/actors/bot-load', { roles: ['metrics-read'] }, admin)).status).toBe(200);
    const given = await within(200, 'to accept the token again');
    console.log(`role change reached all 3 replicas and the authListen thread: taken away in ${taken.toFixed(0)} ms, given back in ${given.toFixed(0)} ms`);
    expect(Math.max(taken, given)).toBeLessThan(1000);
  });

  it('survives a PostgreSQL restart under load: readyz 503 then 200, never 200 for a revoked token', async () => {
    const valid = await mint();
    const revoked = await mint();
    for (const c of checkers) expect(await auth(c, revoked.token)).toBe(200);
    expect((await callApi(replicas[0].url, 'DELETE', `/api/v1/tokens/${revoked.id}`, undefined, admin)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300)); // let the fan-out land before the store goes away
    for (const c of checkers) expect(await auth(c, valid.token)).toBe(200);
    // well-formed tokens that were never issued: each one needs the store to be refused
    const unknown = () => mintToken().plaintext;

    const counts = new Map<string, number>();
    const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
    let running = true;
    const load = Promise.all(
      Array.from({ length: 6 }, async (_, worker) => {
        let n = worker;
        while (running) {
          const checker = checkers[n % checkers.length]!;
          const [label, token] = ([['valid', valid.token], ['revoked', revoked.token], ['unknown', '']] as const)[n++ % 3];
          try {
            count(`${label} ${await auth(checker, token || unknown())}`);
          } catch {
            count(`${label} connection-error`);
          }
        }
      }),
    );

    await new Promise((r) => setTimeout(r, 500));
    const stoppedAt = performance.now();
    await pgServer.stop();
    for (const r of replicas) await waitFor(async () => (await readyz(r.url)) === 503, `${r.url} readyz 503`, 5000, 50);
    const notReadyAfter = performance.now() - stoppedAt;
    await new Promise((r) => setTimeout(r, 1000)); // load continues against the dead store
    await pgServer.start();
    const restartedAt = performance.now();
    for (const r of replicas) await waitFor(async () => (await readyz(r.url)) === 200, `${r.url} readyz 200`, 15_000, 50);
    const readyAfter = performance.now() - restartedAt;
    await new Promise((r) => setTimeout(r, 500));
    running = false;
    await load;

    const summary = Object.fromEntries([...counts].sort());
    console.log(`PostgreSQL restart: all replicas not ready ${notReadyAfter.toFixed(0)} ms after stop, ready ${readyAfter.toFixed(0)} ms after start; answers: ${JSON.stringify(summary)}`);
    expect(counts.get('revoked 200') ?? 0).toBe(0);
    expect(counts.get('unknown 200') ?? 0).toBe(0);
    expect(counts.get('revoked 401') ?? 0).toBeGreaterThan(0);
    expect(counts.get('unknown 401') ?? 0).toBeGreaterThan(0);
    expect(counts.get('valid 200') ?? 0).toBeGreaterThan(0);
    // a token not in any cache cannot be checked while the store is away: 503, never a guess
    expect(counts.get('unknown 503') ?? 0).toBeGreaterThan(0);
    expect([...counts.keys()].filter((k) => k.endsWith('connection-error'))).toEqual([]);
    for (const r of replicas) expect(r.child.exitCode).toBeNull();

    // after recovery: the store answers, and revocations fan out again (LISTEN reconnected or the reconcile poll)
    for (const c of checkers) expect(await auth(c, valid.token)).toBe(200);
    const fresh = await mint(2);
    for (const c of checkers) expect(await auth(c, fresh.token)).toBe(200);
    const times = await revokeAndTime(fresh, 2);
    console.log(`after the restart, revocation reached all replicas ${Math.max(...times.replicas).toFixed(0)} ms after commit`);
    expect(Math.max(...times.replicas)).toBeLessThan(1000);
  });
});
