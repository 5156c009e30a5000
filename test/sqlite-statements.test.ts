import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { connect, withStatementCache } from '../src/store/connect.js';
import { tempDir } from './support/output.js';

// Kysely prepares a statement for every query; the SQLite connection keeps them prepared instead.
describe('the SQLite statement cache', () => {
  it('hands out the prepared statement again for the same text, and a new one for a new text', () => {
    const file = new SQLite(':memory:');
    const db = withStatementCache(file);
    file.exec('create table t (a integer)');
    const first = db.prepare('select a from t');
    expect(db.prepare('select a from t')).toBe(first);
    expect(db.prepare('select a from t where a = ?')).not.toBe(first);
    db.close();
    expect(file.open).toBe(false);
  });

  it('keeps at most its limit, dropping the least recently used', () => {
    const file = new SQLite(':memory:');
    const db = withStatementCache(file, { limit: 2 });
    const a = db.prepare('select 1');
    const b = db.prepare('select 2');
    expect(db.prepare('select 1')).toBe(a); // 'select 2' is now the least recently used
    db.prepare('select 3');
    expect(db.prepare('select 1')).toBe(a);
    expect(db.prepare('select 2')).not.toBe(b);
    file.close();
  });

  it('never hands out a statement that is still being iterated', () => {
    const file = new SQLite(':memory:');
    const db = withStatementCache(file);
    file.exec('create table t (a integer); insert into t values (1), (2)');
    const open = db.prepare('select a from t').iterate([]);
    expect(open.next().value).toEqual({ a: 1 });
    const second = db.prepare('select a from t');
    expect(second.all([])).toEqual([{ a: 1 }, { a: 2 }]);
    expect(open.next().value).toEqual({ a: 2 });
    open.return?.();
    file.close();
  });

  it('tells afterWrite after every statement that writes, a failed one too, and never after a read', () => {
    const file = new SQLite(':memory:');
    let writes = 0;
    const db = withStatementCache(file, { afterWrite: () => writes++ });
    file.exec('create table t (a integer primary key)');
    db.prepare('insert into t values (?)').run([1]);
    db.prepare('insert into t values (?)').run([2]);
    expect(writes).toBe(2);
    expect(() => db.prepare('insert into t values (?)').run([1])).toThrow(/UNIQUE/);
    expect(writes).toBe(3);
    db.prepare('select a from t').all([]);
    expect(writes).toBe(3);
    file.close();
  });

  it('a kept statement sees a column added after it was prepared', () => {
    const file = new SQLite(':memory:');
    const db = withStatementCache(file);
    file.exec('create table t (a integer); insert into t values (1)');
    expect(db.prepare('select * from t').all([])).toEqual([{ a: 1 }]);
    file.exec('alter table t add column b integer default 7');
    expect(db.prepare('select * from t').all([])).toEqual([{ a: 1, b: 7 }]);
    file.close();
  });

  it('the store runs on it: writes, reads, a failed write and a transaction', async () => {
    const path = join(tempDir('sqlite-statements'), 'tokenwarden.db');
    const conn = await connect(path);
    try {
      const insert = (name: string) => conn.db.insertInto('scopes').values({ name, description: 'd', builtin: 0, created_at: 1 }).execute();
      await insert('kept.one');
      await insert('kept.two');
      // The same insert again fails on the primary key, and the kept statement still works afterwards.
      await expect(insert('kept.one')).rejects.toThrow(/UNIQUE|constraint/i);
      await insert('kept.three');
      await conn.db.transaction().execute(async (trx) => {
        await trx.updateTable('scopes').set({ description: 'changed' }).where('name', '=', 'kept.two').execute();
      });
      const rows = await conn.db.selectFrom('scopes').select(['name', 'description']).where('name', 'like', 'kept.%').orderBy('name').execute();
      expect(rows).toEqual([
        { name: 'kept.one', description: 'd' },
        { name: 'kept.three', description: 'd' },
        { name: 'kept.two', description: 'changed' },
      ]);
    } finally {
      await conn.close();
    }
  });
});
