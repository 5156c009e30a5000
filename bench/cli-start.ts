import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort } from '../test/support/ports.js';

/**
 * How long the CLI takes to start, against `node -e 0` (the floor of any Node program), as the
 * median of RUNS interleaved runs of each command. Runs the built CLI (`npm run build` first).
 * Standalone: `node --import tsx bench/cli-start.ts` (BENCH_CLI_RUNS, default 15). The CLI runs on
 * the Node that runs this file; the server on BENCH_SERVER_NODE when set (e.g. the machine's Node 20
 * beside a Node 24 run, when node_modules' better-sqlite3 is built for the other one).
 */
export interface CliStartRow {
  label: string;
  medianMs: number;
  ratio: number;
  target: number;
}

const BIN = resolve('bin/tokenwarden.cjs');

function timeOnce(args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return ms;
}

async function startServer(dir: string): Promise<{ child: ChildProcess; url: string; token: string }> {
  const port = await freePort();
  const tokenFile = join(dir, 'admin.token');
  const child = spawn(process.env.BENCH_SERVER_NODE || process.execPath, [BIN, 'serve', '--port', String(port), '--store', join(dir, 'tw.db'), '--bootstrap-token-file', tokenFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((ok, fail) => {
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      const m = /listening on (http\S+)/.exec(out);
      if (m) ok(m[1]!);
    });
    child.once('exit', (code) => fail(new Error(`tokenwarden serve exited with ${code}: ${out}`)));
  });
  return { child, url, token: readFileSync(tokenFile, 'utf8').trim() };
}

/**
 * A bare node:http server (a child: spawnSync blocks this process) that answers every request with
 * one recorded reply of the real server: `token list` against it is the CLI's own share, the rest
 * of the local-server row is the server's.
 */
async function startReplay(dir: string, reply: { type: string; body: string }): Promise<{ child: ChildProcess; url: string }> {
  writeFileSync(join(dir, 'reply.json'), JSON.stringify(reply));
  const code = `const r = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
    const s = require('http').createServer((q, a) => { q.resume(); a.writeHead(200, { 'content-type': r.type, 'content-length': Buffer.byteLength(r.body) }).end(r.body); });
    s.listen(0, '127.0.0.1', () => console.log('http://127.0.0.1:' + s.address().port));`;
  const child = spawn(process.execPath, ['-e', code, join(dir, 'reply.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((ok, fail) => {
    child.stdout!.once('data', (c) => ok(String(c).trim()));
    child.once('exit', (code) => fail(new Error(`the replay server exited with ${code}`)));
  });
  return { child, url };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

export async function cliStartRows(runs = Number(process.env.BENCH_CLI_RUNS ?? 15)): Promise<CliStartRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tokenwarden-cli-bench-'));
  const server = await startServer(dir);
  let replay: { child: ChildProcess } | undefined;
  try {
    const env = { PATH: process.env.PATH, HOME: dir, TOKENWARDEN_SERVER: server.url, TOKENWARDEN_TOKEN: server.token };
    const res = await fetch(`${server.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${server.token}` } });
    const started = await startReplay(dir, { type: res.headers.get('content-type') ?? 'application/json', body: await res.text() });
    replay = started;
    const commands: { label: string; args: string[]; target: number }[] = [
      { label: 'node -e 0', args: ['-e', '0'], target: 1 },
      { label: 'tokenwarden --version', args: [BIN, '--version'], target: 1.3 },
      { label: 'tokenwarden --help', args: [BIN, '--help'], target: 1.3 },
      { label: 'tokenwarden token list (local server)', args: [BIN, 'token', 'list'], target: 2 },
      // The same command and reply from a bare server: what the CLI itself costs.
      { label: '  same reply from bare node:http', args: [BIN, 'token', 'list', '--server', started.url], target: 2 },
    ];
    const times = commands.map(() => [] as number[]);
    for (const c of commands) timeOnce(c.args, env); // warm the file cache
    for (let i = 0; i < runs; i++) commands.forEach((c, k) => times[k]!.push(timeOnce(c.args, env)));
    const medians = times.map((t) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)]!);
    return commands.map((c, k) => ({ label: c.label, medianMs: medians[k]!, ratio: medians[k]! / medians[0]!, target: c.target }));
  } finally {
    await Promise.all([stop(server.child), replay && stop(replay.child)]);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.write(`CLI on Node ${process.version}${process.env.BENCH_SERVER_NODE ? `, server on ${process.env.BENCH_SERVER_NODE}` : ''}\n`);
  for (const r of await cliStartRows()) {
    process.stdout.write(`${r.label.padEnd(40)} ${r.medianMs.toFixed(0).padStart(5)} ms  ${r.ratio.toFixed(2)}x node -e 0  (target <= ${r.target}x)\n`);
  }
}
