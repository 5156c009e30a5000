import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { StoreLease } from '../src/delivery/leader/lease.js';
import { holderIsGone, leaseIdentity } from '../src/delivery/leader/leadership.js';
import { BindingQueries } from '../src/store/bindings.js';
import { connect } from '../src/store/connect.js';
import { Store } from '../src/store/store.js';
import { TOKEN_PATTERN } from '../src/token/format.js';
import { runCli } from './support/cli.js';
import { rememberSecret, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { type ServeProcess, spawnServe } from './support/process.js';
import { callApi } from './support/server.js';

/**
 * Issue 15, point 1: a controller that crashed is replaced at once when its death is provable
 * (same host, same pid namespace, pid gone), not after delivery.leaseTtl (15 s here, the
 * default); a holder that may be alive (another host, a live pid) is left until its lease
 * expires. Real `tokenwarden serve` processes (run `npm run build` first) on one SQLite file.
 */
const SEC = 1000;

/** The pid of a process that has exited (its pid is free unless the system reuses it meanwhile). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('the lease rule (holderIsGone), on a real SQLite store with a ManualClock', () => {
  let store: Store;
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const self = leaseIdentity();
  const [, , , ns] = self.split(':');
  const suffix = ns ? `:${ns}` : '';

  beforeAll(async () => {
    store = new Store(await connect(join(tempDir('lease-rule'), 'tw.db')));
  });
  afterAll(async () => {
    await store?.close();
  });

  async function heldBy(name: string, holder: string): Promise<void> {
    expect((await new BindingQueries(store).acquireLease(name, holder, clock.now(), 15 * SEC)).held).toBe(true);
  }

  it('takes over at once from a holder on this host whose process is gone, bumping the fencing token', async () => {
    const gone = `${hostname()}:${await deadPid()}:0badc0de${suffix}`;
    expect(holderIsGone(gone, self)).toBe(true);
    await heldBy('dead', gone);
    const lease = new StoreLease(store, clock, self, { name: 'dead', ttlMs: 15 * SEC });
    expect(await lease.acquire()).toBe(true);
    expect(lease.fencingToken).toBe(2);
    expect(lease.status()).toEqual({ leading: true, holder: self, since: clock.now() });
    await store.transaction((tx) => lease.fence(tx));
  });

  it('leaves a holder that may be alive until its lease expires: a live pid, another host, another pid namespace, another shape of name', async () => {
    const pid = await deadPid();
    const maybeAlive = [
      `${hostname()}:${process.ppid}:0badc0de${suffix}`, // alive: the process that started this test
      `${hostname()}:${process.pid}:0badc0de${suffix}`, // this very process (two controllers in one process)
      `not-${hostname()}:${pid}:0badc0de${suffix}`, // gone here, but on another host pid means nothing
      `${hostname()}:${pid}:0badc0de:1`, // another pid namespace (a restarted container)
      `replica-a`,
    ];
    for (const [i, holder] of maybeAlive.entries()) {
      expect(holderIsGone(holder, self), holder).toBe(false);
      await heldBy(`alive-${i}`, holder);
      const lease = new StoreLease(store, clock, self, { name: `alive-${i}`, ttlMs: 15 * SEC });
      expect(await lease.acquire(), holder).toBe(false);
      expect(lease.status()).toMatchObject({ leading: false, holder });
    }
    clock.advance(15 * SEC + 1);
    for (const [i] of maybeAlive.entries()) {
      expect(await new StoreLease(store, clock, self, { name: `alive-${i}`, ttlMs: 15 * SEC }).acquire()).toBe(true);
    }
  });
});

describe('tokenwarden serve: SIGKILL and restart on the same SQLite data dir (default leaseTtl 15 s)', () => {
  let dir: string;
  let args: string[];
  let admin: string;
  let a: ServeProcess | undefined;
  let b: ServeProcess | undefined;
  const sink = () => join(dir, 'short.token');
  const readyz = async (p: ServeProcess) => (await fetch(`${p.url}/readyz`)).json() as Promise<any>;
  const api = (p: ServeProcess, method: string, path: string, body?: unknown) => callApi(p.url, method, path, body, admin);
  const exited = (p: ServeProcess) =>
    p.child.exitCode !== null || p.child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
  const leads = (p: ServeProcess) => waitFor(async () => ((await readyz(p)).controller?.leading ? true : undefined), 'the controller to lead', 2500, 50);

  beforeAll(async () => {
    dir = tempDir('lease-takeover');
    const config = join(dir, 'tokenwarden.yaml');
    mkdirSync(join(dir, 'data'));
    writeFileSync(config, `delivery: { fileRoots: [${dir}], interval: 500ms }\nverify: { failureLimit: 100000 }\n`);
    args = ['--store', join(dir, 'data', 'tw.db'), '--config', config, '--bootstrap-token-file', join(dir, 'admin.token')];
    a = await spawnServe(['--port', '0', ...args]);
    admin = rememberSecret(readFileSync(join(dir, 'admin.token'), 'utf8').trim());
    expect((await api(a, 'POST', '/api/v1/actors', { name: 'bot-short', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('reports in /readyz who leads, apart from readiness, and warns that a 20-second token can expire during a 15-second takeover', async () => {
    const res = await api(a!, 'POST', '/api/v1/bindings', {
      name: 'short',
      actor: 'bot-short',
      scopes: ['metrics.read'],
      lifetime: '20s',
      sinks: [{ kind: 'file', path: sink() }],
      rotation: { confirm: 'none', grace: '1s' },
    });
    expect(res.status).toBe(201);
    expect(res.body.warnings).toEqual([expect.stringMatching(/^lifetime: the token has only 6\.1s left when it is rotated .* less than the 15\.5s .*delivery\.leaseTtl/)]);
    expect(readFileSync(sink(), 'utf8').trim()).toMatch(new RegExp(`^${TOKEN_PATTERN.source}$`));
    const r = await readyz(a!);
    expect(r).toMatchObject({ status: 'ready', store: 'sqlite', controller: { leading: true } });
    expect(r.controller.holder.split(':').slice(0, 2)).toEqual([hostname(), String(a!.child.pid)]);
    expect(typeof r.controller.since).toBe('number');
  });

  it('a second serve on the same file stays ready but standby while the leader lives, and takes over at once when it is SIGKILLed', async () => {
    b = await spawnServe(['--port', '0', ...args]);
    const leader = (await readyz(a!)).controller.holder;
    // Several passes of b's controller (500 ms apart): the live leader's lease is not taken.
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const r = await readyz(b);
      expect(r).toMatchObject({ status: 'ready', controller: { leading: false, holder: leader } });
    }
    const before = readFileSync(sink(), 'utf8');
    a!.child.kill('SIGKILL');
    await exited(a!);
    const killed = Date.now();
    await leads(b);
    expect(Date.now() - killed).toBeLessThan(2500);
    expect((await readyz(b)).controller.holder.split(':')[1]).toBe(String(b.child.pid));
    // And it acts as the leader: a rotation asked for now is delivered within a tick or two.
    expect((await api(b, 'POST', '/api/v1/bindings/short/rotate')).status).toBeLessThan(300);
    await waitFor(async () => (readFileSync(sink(), 'utf8') !== before ? true : undefined), 'the file sink to get the new token', 3000, 50);
    a = undefined;
  });

  it('a process SIGKILLed and restarted at once leads again within ~2 s, not after leaseTtl, and keeps the binding delivering', async () => {
    b!.child.kill('SIGKILL');
    await exited(b!);
    const killed = Date.now();
    a = await spawnServe(['--port', '0', ...args]);
    b = undefined;
    const listening = Date.now();
    await leads(a); // within 2.5 s of listening
    expect(Date.now() - listening).toBeLessThan(2500);
    expect(Date.now() - killed).toBeLessThan(SEC * 12); // start-up on a loaded machine included; leaseTtl is 15 s
    const before = readFileSync(sink(), 'utf8');
    expect((await api(a, 'POST', '/api/v1/bindings/short/rotate')).status).toBeLessThan(300);
    await waitFor(async () => (readFileSync(sink(), 'utf8') !== before ? true : undefined), 'the file sink to get the new token', 3000, 50);
    const token = rememberSecret(readFileSync(sink(), 'utf8').trim());
    expect((await callApi(a.url, 'GET', '/auth?scope=metrics.read', undefined, token)).status).toBe(200);
  });

  it('config check warns, naming the binding, when a declared token could expire while a new leader takes over', async () => {
    const file = join(dir, 'short-bindings.yaml');
    writeFileSync(
      file,
      [
        'delivery: { leaseTtl: 15s }',
        'bindings:',
        `  - { name: tight, actor: bot-short, scopes: [metrics.read], lifetime: 30s, sinks: [{ kind: file, path: ${join(dir, 't.token')} }] }`,
        `  - { name: roomy, actor: bot-short, scopes: [metrics.read], lifetime: 1h, sinks: [{ kind: file, path: ${join(dir, 'r.token')} }] }`,
        '',
      ].join('\n'),
    );
    const res = await runCli(['config', 'check', '-c', file], { TOKENWARDEN_STORE_URL: join(dir, 'check.db') });
    expect(res.code, res.stderr).toBe(0);
    const warnings = res.stderr.split('\n').filter((l) => l.startsWith('warning:'));
    expect(warnings).toEqual([expect.stringMatching(/^warning: bindings\[0\]\.lifetime \(tight\): the token has only 9\.2s left .* 16s /)]);
  });
});
