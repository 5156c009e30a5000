import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.js';

/**
 * State of upstream sources that must survive a restart, e.g. the newest rotated OAuth2 refresh
 * token. `value` is always sealed (AES-256-GCM) by src/sources/sealed-state.ts, never plaintext.
 */
export async function up(db: Kysely<any>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('source_state')
    .addColumn('key', 'varchar(200)', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
}
