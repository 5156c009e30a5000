import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, createWriteStream, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { LOG_DIR } from './output.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/**
 * A real PostgreSQL server for the tests: initdb into a temp data directory, `postgres` on a
 * free loopback port, stopped by PID. Each test file starts its own server and creates a
 * database per use with `createDatabase`.
 */
export interface PostgresServer {
  port: number;
  pid: number;
  /** A connection URL for `database` (trust authentication on loopback: no password). */
  url(database?: string): string;
  createDatabase(prefix?: string): Promise<string>;
  /** Stops the server (fast shutdown: open connections are dropped); the data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops the server and removes its data directory. */
  destroy(): Promise<void>;
}

export function postgresBinDir(): string {
  if (existsSync('/usr/lib/postgresql/15/bin/postgres')) return '/usr/lib/postgresql/15/bin';
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'postgres'))) return join(root, v, 'bin');
  throw new Error('PostgreSQL is not installed (apt-get install postgresql); scripts/test-all.sh installs it');
}

/** initdb and postgres refuse to run as root: run them as the `postgres` system user then. */
function asServerUser(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]];
}

function serverUserIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

export async function startPostgres(options: { name?: string } = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  // Under the system temp dir, not test-output: the postgres user must be able to reach it.
  const root = mkdtempSync(join(tmpdir(), 'tw-pg-'));
  const dataDir = join(root, 'data');
  const ids = serverUserIds();
  if (ids) chownSync(root, ids.uid, ids.gid);
  const [initCmd, initArgs] = asServerUser(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  execFileSync(initCmd, initArgs, { stdio: ['ignore', 'pipe', 'pipe'] });

  const port = await freePort();
  const logFile = join(LOG_DIR, `postgres-${options.name ?? 'test'}-${process.pid}-${port}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  let child: ChildProcess | undefined;

  const start = async () => {
    const [cmd, args] = asServerUser(join(bin, 'postgres'), [
      '-D', dataDir, '-k', root, '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1',
      // Test data is disposable: trade durability for speed.
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      '-c', 'max_connections=200',
    ]);
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.pipe(log, { end: false });
    proc.stderr!.pipe(log, { end: false });
    child = proc;
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`postgres exited with ${proc.exitCode}; see ${logFile}`);
      const client = new pg.Client({ connectionString: url('postgres') });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('select 1');
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    }, `PostgreSQL on port ${port}`, 30_000, 100);
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGINT'); // fast shutdown
    });
  };

  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let counter = 0;

  await start();
  return {
    port,
    get pid() {
      return child?.pid ?? -1;
    },
    url,
    async createDatabase(prefix = 'tw') {
      const name = `${prefix.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${process.pid}_${++counter}`;
      const client = new pg.Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        await client.query(`create database "${name}"`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    stop,
    start,
    async destroy() {
      await stop();
      log.end();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
