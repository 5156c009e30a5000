import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { expect, it } from 'vitest';
import { connect } from '../src/store/connect.js';
import { tempDir } from './support/output.js';

// Two processes on one SQLite file (the server and `tokenwarden admin recover`, say): a transaction
// that reads before it writes must not fail because the other wrote in between (SQLITE_BUSY_SNAPSHOT,
// which no busy_timeout waits out). Write transactions take the write lock when they begin.
it('a read-then-write transaction is not failed by another connection writing in between', async () => {
  const path = join(tempDir('sqlite-writers'), 'tokenwarden.db');
  const conn = await connect(path);
  const other = new SQLite(path);
  other.pragma('busy_timeout = 0');
  try {
    let otherWrote: boolean | undefined;
    await conn.db.transaction().execute(async (trx) => {
      await trx.selectFrom('actors').select('id').execute();
      try {
        other.prepare("insert into scopes (name, description, created_at) values ('other.write', 'x', 1)").run();
        otherWrote = true;
      } catch (err) {
        expect((err as { code?: string }).code).toMatch(/^SQLITE_BUSY/);
        otherWrote = false;
      }
      await trx.insertInto('scopes').values({ name: 'mine.write', description: 'y', builtin: 0, created_at: 2 }).execute();
    });
    // The other connection waited for (here: gave up on) the lock, instead of this transaction failing.
    expect(otherWrote).toBe(false);
    expect(other.prepare("select count(*) as n from scopes where name = 'mine.write'").get()).toEqual({ n: 1 });
  } finally {
    other.close();
    await conn.close();
  }
});
