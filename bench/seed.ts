import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { connect } from '../src/store/connect.js';
import { mintToken } from '../src/token/format.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Cheap random public ids for filler rows (the real minting draws its own per token). */
function fillerIds(count: number): string[] {
  const bytes = randomBytes(count * 12);
  const out: string[] = new Array(count);
  for (let i = 0; i < count; i++) {
    let id = '';
    for (let j = 0; j < 12; j++) id += ALPHABET[bytes[i * 12 + j]! % 62];
    out[i] = id;
  }
  return out;
}

/**
 * A SQLite store with `total` live tokens of one service identity holding metrics.read, written
 * straight into the tokens table (the API would take hours for a million). `usable` of them are
 * real tokens whose plaintext is returned, spread over the whole id range; the rest are filler
 * rows with random ids and hashes, which only make the table and its indexes as large as a big
 * installation's.
 */
export async function seedStore(path: string, total: number, usable: number): Promise<string[]> {
  const conn = await connect(path); // creates the schema through the real migrations
  await conn.close();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const now = Date.now();
  const actorId = 'bench-actor';
  db.prepare('insert or ignore into actors (id, name, kind, description, scopes, disabled, created_at, created_by) values (?, ?, ?, ?, ?, 0, ?, null)').run(
    actorId, 'bot-bench', 'service', 'benchmark identity', '["metrics.read"]', now,
  );
  const insert = db.prepare(
    'insert into tokens (id, actor_id, name, scopes, secret_hash, created_at, created_by, expires_at) values (?, ?, ?, ?, ?, ?, null, ?)',
  );
  const plaintexts: string[] = [];
  const every = Math.max(1, Math.floor(total / Math.max(usable, 1)));
  const scopes = '["metrics.read"]';
  const expires = now + 30 * 86_400_000;
  const batch = 50_000;
  for (let start = 0; start < total; start += batch) {
    const n = Math.min(batch, total - start);
    const ids = fillerIds(n);
    const fillerHash = randomBytes(32).toString('hex');
    db.transaction(() => {
      for (let k = 0; k < n; k++) {
        const i = start + k;
        if (i % every === 0 && plaintexts.length < usable) {
          const t = mintToken();
          plaintexts.push(t.plaintext);
          insert.run(t.id, actorId, `bench-${i}`, scopes, t.secretHash, now, expires);
        } else {
          insert.run(ids[k], actorId, `bench-${i}`, scopes, fillerHash, now, expires);
        }
      }
    })();
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return plaintexts;
}

/**
 * The same on PostgreSQL (`url` names an empty database): the schema through the real migrations,
 * then `total` tokens of one service identity in multi-row inserts; `usable` of them are real.
 */
export async function seedPostgres(url: string, total: number, usable: number): Promise<string[]> {
  const conn = await connect(url);
  try {
    const db = conn.db;
    const now = Date.now();
    const actorId = 'bench-actor';
    await db
      .insertInto('actors')
      .values({ id: actorId, name: 'bot-bench', kind: 'service', description: 'benchmark identity', scopes: '["metrics.read"]', disabled: 0, created_at: now, created_by: null })
      .execute();
    const plaintexts: string[] = [];
    const every = Math.max(1, Math.floor(total / Math.max(usable, 1)));
    const expires = now + 30 * 86_400_000;
    const fillerHash = randomBytes(32).toString('hex');
    for (let start = 0; start < total; start += 1000) {
      const n = Math.min(1000, total - start);
      const ids = fillerIds(n);
      const rows = ids.map((filler, k) => {
        const i = start + k;
        let id = filler;
        let hash = fillerHash;
        if (i % every === 0 && plaintexts.length < usable) {
          const t = mintToken();
          plaintexts.push(t.plaintext);
          id = t.id;
          hash = t.secretHash;
        }
        return { id, actor_id: actorId, name: `bench-${i}`, scopes: '["metrics.read"]', secret_hash: hash, created_at: now, created_by: null, expires_at: expires, revoked_at: null, revoked_by: null, revoke_reason: null, replaces: null, binding_id: null, last_used_at: null, last_used_ip: null, last_used_agent: null };
      });
      await db.insertInto('tokens').values(rows).execute();
    }
    return plaintexts;
  } finally {
    await conn.close();
  }
}
