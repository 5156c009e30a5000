import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.js';

/**
 * What each sink of a binding holds, as last checked (JSON, no secret: sink descriptions, token
 * ids, states), so every replica's `binding show` names the failing sink; and how each finished
 * rotation ended (`success`, `expired-before-confirm`, …), so history tells a rotation that
 * protected nothing from one that did.
 */
export async function up(db: Kysely<any>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('bindings').addColumn('sink_state', 'text').execute();
  await db.schema.alterTable('rotations').addColumn('outcome', 'varchar(40)').execute();
}
