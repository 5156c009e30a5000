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
