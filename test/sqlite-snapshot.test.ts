import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Connection, connect } from '../src/store/connect.js';
import { tempDir } from './support/output.js';

// The verifier's SQLite reads of one event-loop turn share a read snapshot (store/verify-lookup.ts).
// What it may hide, and what it must not: what this process writes is read at once; of another
// writer's commits (another process on the file; an auth thread's reads of the main thread's
// writes), a token minted a moment ago is found at once, and a revocation or grant change is seen
// as soon as the verifier is told (refresh) or the turn ends.
describe('the SQLite lookup snapshot', () => {
  let conn: Connection;
  /** Another connection to the same file: a writer the lookup is not told of. */
  let other: SQLite.Database;
  const now = Date.now();

  const mint = (id: string) =>
    void other
      .prepare('insert into tokens (id, actor_id, name, scopes, secret_hash, created_at, expires_at) values (?, ?, ?, ?, ?, ?, ?)')
      .run(id, 'a1', id, '["metrics.read"]', `hash-${id}`, now, now + 3_600_000);
  const revoke = (id: string) => void other.prepare('update tokens set revoked_at = ? where id = ?').run(now, id);
  const grant = (scopes: string[]) => void other.prepare("update actors set scopes = ? where id = 'a1'").run(JSON.stringify(scopes));
  const revokedAt = async (id: string) => (await conn.lookup.token(id))?.revoked_at;

  beforeEach(async () => {
    const path = join(tempDir('sqlite-snapshot'), 'tokenwarden.db');
    conn = await connect(path);
    other = new SQLite(path);
    other.pragma('busy_timeout = 5000');
    other.prepare("insert into actors (id, name, kind, scopes, created_at) values ('a1', 'svc', 'service', ?, ?)").run('["metrics.read"]', now);
    mint('tok000000001');
    await nextTurn();
  });
  afterEach(async () => {
    other.close();
    await conn.close();
  });

  it("this process's own writes are read in the same turn, without being told", async () => {
    expect(await revokedAt('tok000000001')).toBeNull(); // opens this turn's snapshot
    await conn.db.updateTable('tokens').set({ revoked_at: now }).where('id', '=', 'tok000000001').execute();
    expect(await revokedAt('tok000000001')).toBe(now);
    await conn.db.transaction().execute(async (trx) => {
      await trx.updateTable('actors').set({ disabled: 1 }).where('id', '=', 'a1').execute();
    });
    expect((await conn.lookup.token('tok000000001'))?.actor_disabled).toBe(1);
  });

  it('a revocation committed during the turn is seen after refresh(), and in the next turn without it', async () => {
    expect(await revokedAt('tok000000001')).toBeNull(); // opens this turn's snapshot
    revoke('tok000000001');
    // Within the same turn the snapshot still shows the token live, as the verifier's cache would
    // until it hears of the revocation; told (refresh), it reads the commit.
    expect(await revokedAt('tok000000001')).toBeNull();
    conn.lookup.refresh();
    expect(await revokedAt('tok000000001')).toBe(now);

    mint('tok000000002');
    expect(await revokedAt('tok000000002')).toBeNull();
    revoke('tok000000002');
    await nextTurn();
    expect(await revokedAt('tok000000002')).toBe(now);
  });

  it('a token minted while a snapshot is open is found at once, not answered absent', async () => {
    expect(await conn.lookup.token('tok000000001')).toBeDefined(); // opens this turn's snapshot
    mint('tok000000003');
    const row = await conn.lookup.token('tok000000003');
    expect(row?.id).toBe('tok000000003');
    expect(row?.actor_name).toBe('svc');
    expect(await conn.lookup.token('tok0000000zz')).toBeUndefined();
  });

  it('a grant changed during the turn is read after refresh()', async () => {
    expect(await conn.lookup.scopesOfActor('a1')).toEqual(['metrics.read']);
    grant(['metrics.read', 'tokens.read']);
    expect(await conn.lookup.scopesOfActor('a1')).toEqual(['metrics.read']);
    conn.lookup.refresh();
    expect(await conn.lookup.scopesOfActor('a1')).toEqual(['metrics.read', 'tokens.read']);
  });

  it('one snapshot serves a bounded number of reads, even in a turn that never ends', async () => {
    expect(await revokedAt('tok000000001')).toBeNull();
    revoke('tok000000001');
    // Awaiting in a loop never leaves the turn (microtasks only); the snapshot still ends after 64 reads.
    let seen: number | null | undefined = null;
    for (let i = 0; i < 70 && seen === null; i++) seen = await revokedAt('tok000000001');
    expect(seen).toBe(now);
  });

  it('the writer is not kept from checkpointing by a snapshot left open', async () => {
    expect(await revokedAt('tok000000001')).toBeNull();
    await nextTurn();
    for (let i = 0; i < 20; i++) mint(`tokc${String(i).padStart(8, '0')}`);
    expect(other.pragma('wal_checkpoint(TRUNCATE)')).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
  });
});
