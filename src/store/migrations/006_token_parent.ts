import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.js';

/**
 * A token minted by a token (a caller without `admin:token`) records that token as its parent:
 * it never expires after it and is revoked with it (authority/issuance.ts). Null: it stands alone.
 */
export async function up(db: Kysely<any>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('tokens').addColumn('parent', 'varchar(32)').execute();
  await db.schema.createIndex('tokens_parent_idx').on('tokens').column('parent').execute();
}
