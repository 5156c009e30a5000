import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { systemClock } from '../src/clock.js';
import { connect } from '../src/store/connect.js';
import { Store } from '../src/store/store.js';
import { Verifier } from '../src/verify/verifier.js';
import { type Nginx, renderShipped, startNginx } from '../test/support/nginx.js';
import { freePort } from '../test/support/ports.js';
import { startPostgres } from '../test/support/postgres.js';
import { cliStartRows } from './cli-start.js';
import { seedPostgres, seedStore } from './seed.js';
import { type WrkResult, wrk } from './wrk.js';

/**
 * `npm run bench`: what the token check costs, side by side in one run on loopback.
 * Every wrk run is short (BENCH_SECONDS, default 5) and repeated BENCH_ROUNDS times (default 3),
 * interleaved, and the table shows the median of each figure: the machine is shared and noisy.
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// A server just started is still compiling its hot path and collecting its start-up garbage (the API's schemas,
// its libraries): every case is loaded this long once before the rounds, so the rounds measure the steady state.
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5);
// A case is measured with the bench's other servers paused (SIGSTOP): a dozen idle servers, each waking for
// its timers (controller pass, revocation poll, metrics), and a server still settling after its own case, would
// otherwise share the two cores with the one being measured. BENCH_ISOLATE=0 runs them all at once.
const ISOLATE = process.env.BENCH_ISOLATE !== '0';
const paused = new Set<number>();
function pause(pids: number[]) {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGSTOP');
      paused.add(p);
    } catch {
      /* gone */
    }
  }
}
function resume(pids: Iterable<number>) {
  for (const p of [...pids]) {
    try {
      process.kill(p, 'SIGCONT');
    } catch {
      /* gone */
    }
    paused.delete(p);
  }
}
const CONNECTIONS = 64;
const THREADS = 2;
// A million tokens take a minute or more to seed on a shared machine: only with BENCH_FULL=1 (or listed in BENCH_SCALE).
const SCALE = (process.env.BENCH_SCALE ?? (process.env.BENCH_FULL === '1' ? '10,10000,1000000' : '10,10000')).split(',').map(Number);
const PG_TOKENS = Number(process.env.BENCH_PG_TOKENS ?? 10_000);

const dir = mkdtempSync(join(tmpdir(), 'tokenwarden-bench-'));
const BIN = resolve('bin/tokenwarden.cjs');
/** `tokenwarden serve` with the default configuration, as the README starts it: only its data directory and port differ. */
const serveArgs = (port: number, data: string) => [BIN, 'serve', '--port', String(port), '--store', join(data, 'tokenwarden.db'), '--bootstrap-token-file', join(data, 'admin.token')];
const children: ChildProcess[] = [];
const proxies: Nginx[] = [];

function log(line: string) {
  process.stderr.write(`${line}\n`);
}

/** `cpus` pins the server (taskset -c): the rows that compare verify.threads on 1 and 2 cores. */
function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}, cpus?: string): Promise<ChildProcess> {
  // The built bin runs as users start it (dist/, no tsx); the bench's own servers run from source.
  const argv = args[0] === BIN ? args : ['--import', 'tsx', ...args];
  const [cmd, cmdArgs] = cpus ? ['taskset', ['-c', cpus, process.execPath, ...argv]] : [process.execPath, argv];
  const child = spawn(cmd, cmdArgs, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((ok, fail) => {
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      if (out.includes('listening on')) ok(child);
    });
    child.once('exit', (code) => fail(new Error(`${args[0]} exited with ${code}: ${out}`)));
  });
}

async function expectStatus(url: string, header: string | undefined, status: number, what: string) {
  const res = await fetch(url, { headers: header ? { authorization: header.replace(/^Authorization: /, '') } : {} });
  await res.arrayBuffer();
  if (res.status !== status) throw new Error(`${what}: expected ${status} from ${url}, got ${res.status}`);
}

interface Case {
  key: string;
  label: string;
  url: string;
  header?: string;
  script?: string;
  expect: number;
  /** The processes that serve this case, whose CPU time is charged to it. */
  servers: () => number[];
}

const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim() || 100);

/** user + system CPU time of a process, in microseconds (from /proc, so it ignores time spent waiting for a core). */
function cpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return 0;
  }
}

/** A process and its direct children (nginx's master and workers). */
function family(pid: number): number[] {
  const out = [pid];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  for (const tool of ['wrk', 'nginx']) {
    try {
      execFileSync('which', [tool], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is not installed (apt-get install ${tool})`);
    }
  }
  log(`bench: working in ${dir}`);
  const db = join(dir, 'tokenwarden.db');
  const tokens = await seedStore(db, 10_000, 10_000);
  const tokensFile = join(dir, 'tokens.txt');
  writeFileSync(tokensFile, `${tokens.join('\n')}\n`, { mode: 0o600 });
  const valid = `Authorization: Bearer ${tokens[0]}`;
  const validValue = valid.replace(/^Authorization: /, '');
  // Token-shaped, wrong checksum: the most work a garbage token can cause before it is refused.
  const garbage = `Authorization: Bearer ${tokens[1]!.slice(0, -6)}AAAAAA`;

  const [barePort, warmPort, authPort, coldPort, n5, n5a, n6, n7] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  const bare = (await spawnServer(['bench/bare-server.ts', String(barePort)], { BENCH_EXPECTED_AUTH: validValue })).pid!;
  // The warm server also runs the authListen thread: /auth on a port of its own, in a thread of its own.
  const warm = (await spawnServer(['bench/tw-server.ts', String(warmPort), db, '10s', '100000', String(authPort)])).pid!;

  // The default `tokenwarden serve` (listen.front: threads, verify.threads 1) on a copy of the seeded store; and pinned
  // to one or two cores with verify.threads 1 or 2 (several threads need reusePort, Node >= 22.12: else one thread serves).
  const [defPort, defGPort, p1c1t, p2c1t, p2c2t] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const dataDir = (name: string) => {
    const d = join(dir, name);
    mkdirSync(d);
    copyFileSync(db, join(d, 'tokenwarden.db'));
    return d;
  };
  if (!existsSync(join('dist', 'cli', 'main.js')) && !existsSync(join('dist', 'server.js'))) throw new Error('run "npm run build" first: the default-serve rows run the built bin');
  // Every server has a store of its own: a server paused while another case runs (BENCH_ISOLATE) holds no lock another needs.
  const cold = (await spawnServer(['bench/tw-server.ts', String(coldPort), join(dataDir('cold'), 'tokenwarden.db'), '0s', '1'])).pid!;
  const def = (await spawnServer(serveArgs(defPort, dataDir('serve-default')))).pid!;
  // Garbage from one address trips the failure limit for that address: a server of its own, so (2d) and (5d) stay unlimited.
  const defG = (await spawnServer(serveArgs(defGPort, dataDir('serve-default-garbage')))).pid!;
  const pinned = async (port: number, name: string, cpus: string, threads: number) =>
    (await spawnServer(serveArgs(port, dataDir(name)), { TOKENWARDEN_VERIFY_THREADS: String(threads), TOKENWARDEN_VERIFY_FAILURE_LIMIT: '0' }, cpus)).pid!;
  const c1t1 = await pinned(p1c1t, 'serve-1cpu-1t', '0', 1);
  const c2t1 = await pinned(p2c1t, 'serve-2cpu-1t', '0,1', 1);
  const c2t2 = await pinned(p2c2t, 'serve-2cpu-2t', '0,1', 2);
  const n5d = await freePort();
  // (1h): the bare server again, answering with the headers tokenwarden's 200 carries for this token, so the
  // cost of a larger answer (written and read by wrk on the same cores) is told apart from tokenwarden's work.
  const answer = await fetch(`http://127.0.0.1:${defPort}/auth?scope=metrics.read`, { headers: { authorization: validValue } });
  await answer.arrayBuffer();
  const answerHeaders = Object.fromEntries([...answer.headers].filter(([k]) => !['date', 'connection', 'keep-alive', 'content-length'].includes(k)));
  const bareHeadersPort = await freePort();
  const bareH = (await spawnServer(['bench/bare-server.ts', String(bareHeadersPort)], { BENCH_EXPECTED_AUTH: validValue, BENCH_ANSWER_HEADERS: JSON.stringify(answerHeaders) })).pid!;

  const root = join(dir, 'www');
  mkdirSync(root);
  writeFileSync(join(root, 'metrics'), 'node_up 1\n');
  const nginxAt = async (name: string, port: number, site: string) => {
    const prefix = join(dir, name);
    mkdirSync(prefix);
    const n = await startNginx(prefix, site, { errorLog: join(prefix, 'error.log'), accessLog: 'off' }, [port]);
    proxies.push(n);
    return n.child.pid!;
  };
  // (5) and (6) render the shipped config, so the benchmark measures what users deploy.
  const shipped = (upstreamPort: number, port: number) =>
    renderShipped('deploy/nginx/tokenwarden-auth.conf', { TOKENWARDEN: `127.0.0.1:${upstreamPort}`, LISTEN: `127.0.0.1:${port}`, SCOPE: 'metrics.read', ROOT: root });
  const ng5 = await nginxAt('nginx-tokenwarden', n5, shipped(warmPort, n5));
  const ng5a = await nginxAt('nginx-tokenwarden-authlisten', n5a, shipped(authPort, n5a));
  const ng5d = await nginxAt('nginx-tokenwarden-serve', n5d, shipped(defPort, n5d));
  const ng6 = await nginxAt('nginx-bare', n6, shipped(barePort, n6));
  const ng7 = await nginxAt('nginx-alone', n7, `server { listen 127.0.0.1:${n7}; location / { root ${root}; } }`);
  const named: [number, string][] = [[bare, 'bare'], [bareH, 'bare-headers'], [warm, 'warm'], [cold, 'cold'], [def, 'serve'], [defG, 'serve-garbage'], [c1t1, 'serve-1c1t'], [c2t1, 'serve-2c1t'], [c2t2, 'serve-2c2t'], [ng5, 'nginx5'], [ng5a, 'nginx5a'], [ng5d, 'nginx5d'], [ng6, 'nginx6'], [ng7, 'nginx7']];
  const nameOf = new Map(named);
  /** Every process of the bench, nginx workers included: what else ran while a case was measured. */
  const everyServer = () => named.flatMap(([pid]) => family(pid));

  const cases: Case[] = [
    { key: '1', label: 'bare node:http, constant header compare', url: `http://127.0.0.1:${barePort}/auth?scope=metrics.read`, header: valid, expect: 200, servers: () => [bare] },
    { key: '1h', label: `bare node:http, answering with tokenwarden's ${Object.keys(answerHeaders).length} identity headers`, url: `http://127.0.0.1:${bareHeadersPort}/auth?scope=metrics.read`, header: valid, expect: 200, servers: () => [bareH] },
    { key: '2', label: 'tokenwarden /auth, valid token (cached)', url: `http://127.0.0.1:${warmPort}/auth?scope=metrics.read`, header: valid, expect: 200, servers: () => [warm] },
    { key: '2a', label: 'tokenwarden authListen /auth, valid token (cached)', url: `http://127.0.0.1:${authPort}/auth?scope=metrics.read`, header: valid, expect: 200, servers: () => [warm] },
    { key: '3', label: 'tokenwarden /auth, garbage token', url: `http://127.0.0.1:${warmPort}/auth?scope=metrics.read`, header: garbage, expect: 401, servers: () => [warm] },
    { key: '3a', label: 'tokenwarden authListen /auth, garbage token', url: `http://127.0.0.1:${authPort}/auth?scope=metrics.read`, header: garbage, expect: 401, servers: () => [warm] },
    { key: '2d', label: 'tokenwarden serve, defaults (README), valid token (cached)', url: `http://127.0.0.1:${defPort}/auth?scope=metrics.read`, header: valid, expect: 200, servers: () => [def] },
    // The default failure limit (30 per source per minute) answers garbage from one address with 429 after 30: what users get.
    { key: '3d', label: 'tokenwarden serve, defaults (README), garbage token (429 past the failure limit)', url: `http://127.0.0.1:${defGPort}/auth?scope=metrics.read`, header: garbage, expect: 429, servers: () => [defG] },
    { key: '8a', label: 'serve on 1 core (taskset), verify.threads 1, valid (cached)', url: `http://127.0.0.1:${p1c1t}/auth?scope=metrics.read`, header: valid, expect: 200, servers: () => [c1t1] },
    { key: '8b', label: 'serve on 2 cores (taskset), verify.threads 1, valid (cached)', url: `http://127.0.0.1:${p2c1t}/auth?scope=metrics.read`, header: valid, expect: 200, servers: () => [c2t1] },
    { key: '8c', label: 'serve on 2 cores (taskset), verify.threads 2, valid (cached)', url: `http://127.0.0.1:${p2c2t}/auth?scope=metrics.read`, header: valid, expect: 200, servers: () => [c2t2] },
    { key: '4', label: 'tokenwarden /auth, valid token, cold (10k distinct, no cache)', url: `http://127.0.0.1:${coldPort}/auth?scope=metrics.read`, script: resolve('bench/cycle.lua'), expect: 200, servers: () => [cold] },
    { key: '5', label: 'nginx auth_request -> tokenwarden', url: `http://127.0.0.1:${n5}/metrics`, header: valid, expect: 200, servers: () => [...family(ng5), warm] },
    { key: '5a', label: 'nginx auth_request -> tokenwarden authListen', url: `http://127.0.0.1:${n5a}/metrics`, header: valid, expect: 200, servers: () => [...family(ng5a), warm] },
    { key: '5d', label: 'nginx auth_request -> tokenwarden serve, defaults', url: `http://127.0.0.1:${n5d}/metrics`, header: valid, expect: 200, servers: () => [...family(ng5d), def] },
    { key: '6', label: 'nginx auth_request -> bare server (1)', url: `http://127.0.0.1:${n6}/metrics`, header: valid, expect: 200, servers: () => [...family(ng6), bare] },
    { key: '7', label: 'nginx alone (static file)', url: `http://127.0.0.1:${n7}/metrics`, expect: 200, servers: () => family(ng7) },
  ];
  const only = process.env.BENCH_CASES?.split(',');
  if (only) cases.splice(0, cases.length, ...cases.filter((c) => only.includes(c.key)));
  for (const c of cases) {
    // 429 comes once the failure limit is reached: spend it first.
    if (c.expect === 429) for (let i = 0; i < 40; i++) await expectStatus(c.url, c.header, 0, '').catch(() => undefined);
    await expectStatus(c.url, c.header ?? (c.script ? valid : undefined), c.expect, `case (${c.key})`);
  }

  const results = new Map<string, WrkResult[]>(cases.map((c) => [c.key, []]));
  const env = { BENCH_TOKENS: tokensFile };
  if (WARMUP > 0) {
    log(`warming every case up for ${WARMUP} s`);
    for (const c of cases) await wrk(c.url, { connections: CONNECTIONS, threads: THREADS, header: c.header, script: c.script, env, seconds: WARMUP });
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of cases) {
      const opts = { connections: CONNECTIONS, threads: THREADS, header: c.header, script: c.script, env };
      const pids = c.servers();
      const others = everyServer().filter((p) => !pids.includes(p));
      if (ISOLATE) pause(others);
      try {
        await wrk(c.url, { ...opts, seconds: 1 }); // warm-up: JIT, caches, keep-alive pools
        const cpu0 = pids.reduce((a, p) => a + cpuUs(p), 0);
        const others0 = others.map(cpuUs);
        const r = await wrk(c.url, { ...opts, seconds: SECONDS });
        r.cpuUsPerReq = (pids.reduce((a, p) => a + cpuUs(p), 0) - cpu0) / r.requests;
        const busy = others.map((p, i) => [p, (cpuUs(p) - others0[i]!) / 1000] as const).filter(([, ms]) => ms >= 20);
        if (busy.length) log(`  others during (${c.key}): ${busy.map(([p, ms]) => `${nameOf.get(p) ?? p}=${ms.toFixed(0)}ms`).join(' ')}`);
        const wrong = c.expect === 200 ? r.non2xx : c.expect === 429 ? 0 : r.requests - r.non2xx;
        if (wrong > 0 || r.errors > 0) log(`  warning: case (${c.key}) had ${wrong} unexpected answers and ${r.errors} socket errors`);
        results.get(c.key)!.push(r);
        log(`round ${round}/${ROUNDS} (${c.key}) ${c.label}: ${Math.round(r.rps)} req/s, p50 ${r.p50ms.toFixed(2)} ms, p99 ${r.p99ms.toFixed(2)} ms, ${r.cpuUsPerReq!.toFixed(1)} CPU us/req`);
      } finally {
        if (ISOLATE) resume(others);
      }
    }
  }
  for (const p of proxies) await p.stop();
  for (const c of children) c.kill('SIGTERM');

  const med = (key: string) => {
    const rs = results.get(key)!;
    return { rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50ms)), p99: median(rs.map((r) => r.p99ms)), cpu: median(rs.map((r) => r.cpuUsPerReq!)) };
  };
  // Issue 16's targets, printed beside each ratio.
  const cached = '>= 0.85x, p99 <= 1.2x';
  const targetOf: Record<string, string> = {
    '2': cached, '2a': cached, '2d': cached, '3': cached, '3a': cached, '3d': cached, '4': '>= 0.4x, p99 <= 3x', '5': '>= 0.9x', '5a': '>= 0.9x', '5d': '>= 0.9x',
  };
  const ratioOf: Record<string, string> = {
    '2': '1', '2a': '1', '2d': '1', '3': '1', '3a': '1', '3d': '1', '4': '1', '1h': '1', '5': '6', '5a': '6', '5d': '6', '6': '7', '8a': '1', '8b': '1', '8c': '8b',
  };
  for (const [k, base] of Object.entries(ratioOf)) if (!results.has(base)) delete ratioOf[k];
  const rows = cases.map((c) => {
    const m = med(c.key);
    const base = ratioOf[c.key];
    const b = base ? med(base) : undefined;
    return [
      `(${c.key}) ${c.label}`,
      Math.round(m.rps).toLocaleString('en-US'),
      m.p50.toFixed(2),
      m.p99.toFixed(2),
      b ? `(${c.key})/(${base})` : '',
      b ? `${(m.rps / b.rps).toFixed(2)}x` : '',
      b ? `${(m.p99 / b.p99).toFixed(2)}x` : '',
      m.cpu.toFixed(1),
      b ? `${(m.cpu / b.cpu).toFixed(2)}x` : '',
      b ? (targetOf[c.key] ?? '') : '',
    ];
  });
  const header = ['case', 'req/s', 'p50 ms', 'p99 ms', 'ratio', 'req/s ratio', 'p99 ratio', 'server CPU us/req', 'CPU ratio', 'target'];

  // Verify cost against the size of the store: cold lookups (no cache) in-process, one at a time.
  const scaleRows: string[][] = [];
  const scaleRates: number[] = [];
  const lookupRow = (engine: string, n: number, r: Awaited<ReturnType<typeof coldLookups>>, seeded: string, target: number) => [
    engine,
    n.toLocaleString('en-US'),
    Math.round(r.rate).toLocaleString('en-US'),
    Math.round(r.perCpuSecond).toLocaleString('en-US'),
    r.p50us.toFixed(0),
    r.p99us.toFixed(0),
    `>= ${target.toLocaleString('en-US')}/s`,
    `${seeded} s`,
  ];
  for (const n of SCALE) {
    const started = Date.now();
    const path = join(dir, `scale-${n}.db`);
    const sample = await seedStore(path, n, Math.min(n, 5000));
    const seeded = ((Date.now() - started) / 1000).toFixed(1);
    const r = await coldLookups(path, sample);
    scaleRates.push(r.rate);
    scaleRows.push(lookupRow('SQLite', n, r, seeded, 50_000));
    log(`store of ${n}: ${Math.round(r.rate)} cold lookups/s (seeded in ${seeded} s)`);
    rmSync(path, { force: true });
    rmSync(`${path}-wal`, { force: true });
    rmSync(`${path}-shm`, { force: true });
  }
  if (process.env.BENCH_PG !== '0') {
    const pgServer = await startPostgres({ name: 'bench' });
    try {
      const started = Date.now();
      const url = await pgServer.createDatabase('bench');
      const sample = await seedPostgres(url, PG_TOKENS, Math.min(PG_TOKENS, 5000));
      const seeded = ((Date.now() - started) / 1000).toFixed(1);
      for (const inFlight of [1, 8]) {
        const r = await coldLookups(url, sample, inFlight);
        scaleRows.push(lookupRow(`PostgreSQL, ${inFlight} in flight`, PG_TOKENS, r, seeded, 10_000));
        log(`PostgreSQL store of ${PG_TOKENS}, ${inFlight} in flight: ${Math.round(r.rate)} cold lookups/s`);
      }
    } finally {
      await pgServer.destroy();
    }
  }
  const cli = process.env.BENCH_CLI === '0' ? [] : await cliStartRows();

  const out = process.stdout;
  out.write(`\ntokenwarden bench: wrk -t${THREADS} -c${CONNECTIONS} -d${SECONDS}s on 127.0.0.1, median of ${ROUNDS} rounds after ${WARMUP} s of warm-up per case, node ${process.version}, nginx 1 worker\n\n`);
  out.write(table(header, rows));
  out.write('\ntargets (req/s ratio, p99 ratio): see the last column. "a" rows: the same check on the authListen port (a thread of its own)\n');
  if (results.has('1h')) {
    const h = med('1h');
    const against = ['2', '2d', '3d'].filter((k) => results.has(k)).map((k) => {
      const m = med(k);
      return `(${k})/(1h) ${(m.rps / h.rps).toFixed(2)}x req/s, ${(m.cpu / h.cpu).toFixed(2)}x CPU`;
    });
    if (against.length) out.write(`against a bare server giving the same answer (1h), tokenwarden's own work: ${against.join('; ')}\n`);
  }
  out.write('"d" rows: `tokenwarden serve` with the default configuration, the built bin, as the README starts it; (8c)/(8b): verify.threads 2 against 1 on the same 2 cores (wrk shares them)\n');
  out.write('server CPU us/req: user+system CPU of the serving processes (nginx master+workers and its upstream for 5-7) per request; unlike req/s it does not move with the load others put on the machine\n');
  out.write('\nverify cost against store size (cold lookups: parse + store hit + scopes, no cache; in-process, one at a time unless said)\n\n');
  out.write(table(['engine', 'tokens stored', 'lookups/s', 'per CPU second', 'p50 us', 'p99 us', 'target', 'seeded in'], scaleRows));
  if (scaleRates.length > 1) {
    const spread = Math.min(...scaleRates) / Math.max(...scaleRates);
    out.write(`\nSQLite, smallest over largest store: ${spread.toFixed(2)}x (target: flat within 25 %, >= 0.75x)\n`);
  }
  out.write('per CPU second: lookups per second of this process\'s own CPU time, which other load on the machine does not move\n');
  if (cli.length) {
    out.write(`\nCLI start (median of ${process.env.BENCH_CLI_RUNS ?? 15} interleaved runs each, the built CLI)\n\n`);
    out.write(table(['command', 'median ms', 'ratio to node -e 0', 'target'], cli.map((r) => [r.label, r.medianMs.toFixed(0), `${r.ratio.toFixed(2)}x`, r.label === 'node -e 0' ? '' : `<= ${r.target}x`])));
  }
}

/** `inFlight` checks at a time (a server has many requests open at once; one at a time measures the round trip). */
async function coldLookups(path: string, sample: string[], inFlight = 1): Promise<{ rate: number; perCpuSecond: number; p50us: number; p99us: number }> {
  const store = new Store(await connect(path));
  const verifier = new Verifier(store, systemClock, { cacheTtlMs: 0, negativeTtlMs: 0, cacheSize: 1, failureLimit: 0, failureWindowMs: 60_000 });
  const source = { ip: '127.0.0.1', userAgent: 'bench' };
  try {
    for (let i = 0; i < 2000; i++) await verifier.verify(sample[i % sample.length], source);
    const lat: number[] = [];
    const end = Date.now() + 3000;
    let i = 0;
    let failed = 0;
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    const run = async () => {
      while (Date.now() < end) {
        const s = process.hrtime.bigint();
        const v = await verifier.verify(sample[i++ % sample.length], source);
        lat.push(Number(process.hrtime.bigint() - s) / 1000);
        if (!v.ok) failed++;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, run));
    const total = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    if (failed) throw new Error(`${failed} cold lookups failed`);
    lat.sort((a, b) => a - b);
    return { rate: lat.length / total, perCpuSecond: lat.length / ((cpu.user + cpu.system) / 1e6), p50us: lat[Math.floor(lat.length * 0.5)]!, p99us: lat[Math.floor(lat.length * 0.99)]! };
  } finally {
    await store.close();
  }
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |\n`;
  return line(header) + `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|\n` + rows.map(line).join('');
}

try {
  await main();
} finally {
  resume(paused);
  for (const p of proxies) await p.stop().catch(() => undefined);
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
