import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN } from './support/cli.js';
import { LOG_DIR, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { stopChild } from './support/process.js';

/** Issue 13 point 7: the built server under umask 022 leaves its data dir 0700 and every file in it 0600. */
let child: ChildProcess | undefined;
afterEach(async () => {
  await stopChild(child);
  child = undefined;
});

async function serveUnderUmask022(store: string): Promise<{ url: string; log: string }> {
  const log = join(LOG_DIR, `serve-modes-${process.pid}-${Date.now()}.log`);
  const out = createWriteStream(log);
  child = spawn('sh', ['-c', `umask 022 && exec "$0" "$1" serve --port 0 --store "$2"`, process.execPath, BIN, store], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const proc = child;
  const url = await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`serve exited with ${proc.exitCode}: ${readFileSync(log, 'utf8')}`);
    return existsSync(log) ? /listening on (http\S+)/.exec(readFileSync(log, 'utf8'))?.[1] : undefined;
  }, 'tokenwarden serve to listen');
  return { url, log };
}

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

describe('data dir file modes', () => {
  it('creates the data dir 0700 and the database, -wal, -shm and delivery.key 0600 under umask 022', async () => {
    const data = join(tempDir('modes'), 'data');
    const db = join(data, 'tokenwarden.db');
    const { url, log } = await serveUnderUmask022(db);
    // Something written, so the WAL holds data.
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    await waitFor(async () => existsSync(`${db}-wal`) && existsSync(`${db}-shm`), 'the WAL files');
    expect(mode(data)).toBe('700');
    for (const f of [db, `${db}-wal`, `${db}-shm`, join(data, 'delivery.key')]) expect([f, mode(f)]).toEqual([f, '600']);
    expect(readFileSync(log, 'utf8')).not.toContain('open to other users');
  });

  it('narrows an older database to 0600 and warns about an existing data dir that others can read', async () => {
    const data = join(tempDir('modes-old'), 'data');
    mkdirSync(data, { recursive: true });
    chmodSync(data, 0o755);
    const db = join(data, 'tokenwarden.db');
    writeFileSync(db, '');
    chmodSync(db, 0o644);
    const { log } = await serveUnderUmask022(db);
    expect(mode(db)).toBe('600');
    expect(mode(`${db}-wal`)).toBe('600');
    expect(mode(join(data, 'delivery.key'))).toBe('600');
    // The directory itself is the operator's: left as it is, and named in a warning with what to do.
    expect(mode(data)).toBe('755');
    const warning = await waitFor(async () => readFileSync(log, 'utf8').split('\n').find((l) => l.includes('open to other users')), 'the warning');
    expect(warning).toContain(`chmod 700 ${data}`);
    expect(JSON.parse(warning)).toMatchObject({ level: 40, dir: data, mode: '0755' });
  });
});
