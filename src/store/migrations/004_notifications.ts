import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.js';

/**
 * The notification outbox. `dedup_key` is unique: one notice per subject per condition per
 * window, so restarts and several replicas never send the same notice twice.
 */
export async function up(db: Kysely<any>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('notifications')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('dedup_key', 'varchar(300)', (c) => c.notNull().unique())
    .addColumn('kind', 'varchar(64)', (c) => c.notNull())
    .addColumn('subject', 'varchar(200)', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
    .addColumn('delivered_at', 'bigint')
    .addColumn('failed_at', 'bigint')
    .addColumn('last_error', 'text')
    .execute();
  await db.schema.createIndex('notifications_due_idx').on('notifications').columns(['delivered_at', 'failed_at', 'next_attempt_at']).execute();
}
