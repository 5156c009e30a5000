import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.js';

/**
 * One row per change of what an identity may do (its roles, own scopes or disabled flag; `*` for a
 * role's scopes): other processes sharing the store poll it to drop cached verdicts, as they poll
 * `tokens.revoked_at` for revocations. On PostgreSQL it is the reconcile for a missed NOTIFY.
 */
export async function up(db: Kysely<any>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('grant_changes')
    .addColumn('actor_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('changed_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('grant_changes_at_idx').on('grant_changes').column('changed_at').execute();
}
