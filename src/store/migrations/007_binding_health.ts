import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.js';

/**
 * What each sink of a binding holds, as last checked (JSON, no secret: sink descriptions, token
 * ids, states), so every replica's `binding show` names the failing sink; and how each finished
 * rotation ended (`success`, `expired-before-confirm`, …), so history tells a rotation that
 * protected nothing from one that did. Reasons become free text.
 */
export async function up(db: Kysely<any>, ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('bindings').addColumn('sink_state', 'text').execute();
  await db.schema.alterTable('rotations').addColumn('outcome', 'varchar(40)').execute();
  // When the token the rotation replaces expires: a rotation that began or confirmed after it is not a success.
  await db.schema.alterTable('rotations').addColumn('old_expires_at', 'bigint').execute();
  // A reason says why in words ("revoked by admin outside the binding"), not in a 32-character code.
  // SQLite does not enforce varchar lengths (and cannot alter a column); PostgreSQL does.
  if (ctx.engine === 'postgres') {
    await db.schema.alterTable('bindings').alterColumn('rotate_reason', (c) => c.setDataType('text')).execute();
    await db.schema.alterTable('rotations').alterColumn('reason', (c) => c.setDataType('text')).execute();
  }
}
