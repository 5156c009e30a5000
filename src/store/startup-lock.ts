import { type Kysely, sql } from 'kysely';
import type { Database } from './schema.js';
import type { Store } from './store.js';

/**
 * Runs one-time start-up writes (the first admin, built-in roles, declared bindings) while
 * holding a PostgreSQL advisory lock, so that replicas starting together take turns: the
 * first one bootstraps, the others find it done instead of failing on a unique name.
 * On SQLite (one process) it simply runs `work`.
 */
export async function withStartupLock<T>(store: Store, work: () => Promise<T>): Promise<T> {
  if (store.engine !== 'postgres') return work();
  // A session-level lock lives on one connection: hold that connection for the duration.
  return (store.kysely as Kysely<Database>).connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(hashtext('tokenwarden.startup'))`.execute(conn);
    try {
      return await work();
    } finally {
      await sql`select pg_advisory_unlock(hashtext('tokenwarden.startup'))`.execute(conn);
    }
  });
}
