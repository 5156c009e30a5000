import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { CrashPoint } from '../src/delivery/rotation/crash-points.js';
import { StoreLease } from '../src/delivery/leader/lease.js';
import { LostLeadership } from '../src/delivery/rotation/rotation.js';
import { connect } from '../src/store/connect.js';
import { Store } from '../src/store/store.js';
import { rememberSecret, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { type PostgresServer, startPostgres } from './support/postgres.js';
import { type ServeProcess, spawnServe } from './support/process.js';
import { callApi } from './support/server.js';

/** The delivery controller's store lease on PostgreSQL, where two replicas really run at once. */
const SEC = 1000;
let pgServer: PostgresServer;
let storeA: Store;
let storeB: Store;
let clock: ManualClock;

beforeAll(async () => {
  pgServer = await startPostgres({ name: 'leader' });
});
afterAll(async () => {
  await pgServer?.destroy();
});
beforeEach(async () => {
  const url = await pgServer.createDatabase('leader');
  // two replicas: two pools on one database
  storeA = new Store(await connect(url));
  storeB = new Store(await connect(url));
  clock = new ManualClock();
});
afterEach(async () => {
  await storeA.close();
  await storeB.close();
});

describe('leader lease on PostgreSQL', () => {
  it('elects one leader, renews, takes over after expiry with a higher fencing token, and fences the old leader', async () => {
    const a = new StoreLease(storeA, clock, 'replica-a', { name: 'delivery-controller', ttlMs: 15 * SEC });
    const b = new StoreLease(storeB, clock, 'replica-b', { name: 'delivery-controller', ttlMs: 15 * SEC });
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    clock.advance(10 * SEC);
    expect(await a.acquire()).toBe(true);
    clock.advance(10 * SEC);
    expect(await b.acquire()).toBe(false);
    const fencing = a.fencingToken;
    clock.advance(6 * SEC); // a stopped renewing: its lease expired
    expect(await b.acquire()).toBe(true);
    expect(b.fencingToken).toBe(fencing + 1);
    await expect(storeA.transaction((tx) => a.fence(tx))).rejects.toBeInstanceOf(LostLeadership);
    await storeB.transaction((tx) => b.fence(tx));
    await b.release();
    expect(await a.acquire()).toBe(true);
  });

  it('two replicas racing for an expired lease: exactly one wins', async () => {
    const dead = new StoreLease(storeA, clock, 'replica-dead', { ttlMs: 15 * SEC });
    expect(await dead.acquire()).toBe(true);
    clock.advance(16 * SEC);
    const contenders = Array.from({ length: 6 }, (_, i) => new StoreLease(i % 2 ? storeA : storeB, clock, `replica-${i}`, { ttlMs: 15 * SEC }));
    const won = await Promise.all(contenders.map((c) => c.acquire()));
    expect(won.filter(Boolean)).toHaveLength(1);
    const winner = contenders[won.indexOf(true)];
    expect(winner.fencingToken).toBe(2);
  });

  it("a takeover cannot slip in between the old leader's fence check and its commit", async () => {
    const a = new StoreLease(storeA, clock, 'replica-a', { ttlMs: 15 * SEC });
    const b = new StoreLease(storeB, clock, 'replica-b', { ttlMs: 15 * SEC });
    expect(await a.acquire()).toBe(true);
    let takeover: Promise<boolean> | undefined;
    let tookOverMidTransaction = false;
    const committed = await storeA
      .transaction(async (tx) => {
        await a.fence(tx); // a is the leader as this step begins
        // a pauses (GC, slow sink); its lease runs out and b takes over meanwhile
        clock.advance(16 * SEC);
        takeover = b.acquire();
        tookOverMidTransaction = await Promise.race([takeover, new Promise<false>((r) => setTimeout(() => r(false), 500))]);
        await tx.putSetting('step-written-by', 'replica-a');
      })
      .then(
        () => true,
        () => false,
      );
    expect(await takeover).toBe(true);
    // Either the takeover waited for a's step to finish, or a's step did not commit: never both leaders' writes.
    expect({ tookOverMidTransaction, committed }).not.toEqual({ tookOverMidTransaction: true, committed: true });
  });
});

/**
 * Two `tokenwarden serve` processes on one PostgreSQL (run `npm run build` first). The leader is
 * killed (SIGKILL, TOKENWARDEN_TEST_CRASH_AT) in the middle of a rotation; the other replica takes
 * the lease once it expires and finishes the rotation: one live token, in every sink, the one
 * before it revoked, and no second token minted for the same step.
 */
describe('leader killed mid-rotation, the other replica finishes it', () => {
  let url: string;
  let dir: string;
  let admin: string;
  const running: ServeProcess[] = [];
  // Not under `dir`, where delivery.key is: no sink writes in tokenwarden's data dir.
  let sinks: string;
  const sink = (n: string) => join(sinks, `${n}.token`);
  const readToken = (p: string) => rememberSecret(readFileSync(p, 'utf8').trim());

  async function serve(name: string, env: Record<string, string> = {}): Promise<ServeProcess> {
    const config = join(dir, 'tokenwarden.yaml');
    const p = await spawnServe(['--port', '0', '--store', url, '--config', config, '--bootstrap-token-file', join(dir, `${name}.boot`)], env);
    running.push(p);
    return p;
  }
  async function leaseHolderPid(): Promise<number | undefined> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const row = (await client.query("select holder, fencing, expires_at from leases where name = 'delivery-controller'")).rows[0];
      return row && Number(row.expires_at) > Date.now() ? Number(String(row.holder).split(':')[1]) : undefined;
    } finally {
      await client.end();
    }
  }
  const exited = (p: ServeProcess) =>
    p.child.exitCode !== null || p.child.signalCode !== null
      ? Promise.resolve(p.child.signalCode)
      : new Promise<NodeJS.Signals | null>((r) => p.child.once('exit', (_c, signal) => r(signal)));

  beforeAll(async () => {
    url = await pgServer.createDatabase('failover');
    dir = tempDir('pg-failover');
    sinks = tempDir('pg-failover-sinks');
    writeFileSync(join(dir, 'tokenwarden.yaml'), `delivery: { interval: 200ms, leaseTtl: 1s, keyFile: ${join(dir, 'delivery.key')}, fileRoots: [${sinks}] }\nverify: { failureLimit: 0 }\n`);
    const first = await serve('first');
    // serve prints "listening" a moment before it writes the bootstrap file
    admin = rememberSecret(await waitFor(async () => existsSync(join(dir, 'first.boot')) && readFileSync(join(dir, 'first.boot'), 'utf8').trim(), 'the bootstrap token', 10_000, 20));
    expect((await callApi(first.url, 'POST', '/api/v1/actors', { name: 'bot-failover', kind: 'service', roles: ['metrics-read'] }, admin)).status).toBe(201);
    const spec = { name: 'failover', actor: 'bot-failover', scopes: ['metrics.read'], lifetime: '1h', sinks: [{ kind: 'file', path: sink('a') }, { kind: 'file', path: sink('b') }], rotation: { grace: '1s', confirm: 'none' } };
    const created = await callApi(first.url, 'POST', '/api/v1/bindings', spec, admin);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await waitFor(async () => (await callApi(first.url, 'GET', '/api/v1/bindings/failover', undefined, admin)).body.tokenId, 'the first delivery', 20_000, 100);
    await first.stop(); // graceful: releases the lease
  });
  afterAll(async () => {
    // (a process killed by a signal has exitCode null: stop() would wait for an exit already past)
    await Promise.all(running.filter((p) => p.child.exitCode === null && p.child.signalCode === null).map((p) => p.stop()));
  });

  for (const point of ['deliver-partial', 'revoke'] as CrashPoint[]) {
    it(`killed at "${point}"`, async () => {
      const previous = readToken(sink('a'));
      const previousId = previous.slice(4, 16);
      const doomed = await serve(`doomed-${point}`, { TOKENWARDEN_TEST_CRASH_AT: point });
      await waitFor(async () => (await leaseHolderPid()) === doomed.child.pid, 'the doomed replica to lead', 10_000, 100);
      const survivor = await serve(`survivor-${point}`);
      expect(await leaseHolderPid()).toBe(doomed.child.pid);
      const died = exited(doomed);
      await callApi(doomed.url, 'POST', '/api/v1/bindings/failover/rotate', undefined, admin).catch(() => undefined);
      expect(await died).toBe('SIGKILL');

      const api = (method: string, path: string, token: string | null = admin) => callApi(survivor.url, method, path, undefined, token);
      const b = await waitFor(
        async () => {
          const res = await api('GET', '/api/v1/bindings/failover');
          return res.body.state === 'active' && res.body.inFlight === null && res.body.tokenId !== previousId ? res.body : undefined;
        },
        'the survivor to finish the rotation',
        30_000,
        100,
      );
      expect(await leaseHolderPid()).toBe(survivor.child.pid);
      const live = (await api('GET', '/api/v1/tokens?state=active')).body.items.filter((t: any) => t.bindingId !== null && t.name === 'binding:failover');
      expect(live.map((t: any) => t.id)).toEqual([b.tokenId]);
      const delivered = readToken(sink('a'));
      expect(readToken(sink('b'))).toBe(delivered);
      expect(delivered.slice(4, 16)).toBe(b.tokenId);
      expect((await api('GET', '/auth?scope=metrics.read', delivered)).status).toBe(200);
      await waitFor(async () => (await api('GET', `/api/v1/tokens/${previousId}`)).body.state === 'revoked', 'the previous token revoked', 10_000, 100);
      expect((await api('GET', '/auth?scope=metrics.read', previous)).status).toBe(401);
      // exactly one successor was minted for this rotation: no double mint across the takeover
      const successors = (await api('GET', '/api/v1/tokens?state=revoked')).body.items.concat(live).filter((t: any) => t.replaces === previousId);
      expect(successors.map((t: any) => t.id)).toEqual([b.tokenId]);
      await survivor.stop(); // the next round starts with a free lease
    });
  }
});
