import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.js';

/** Delivery bindings, their rotations (a persisted state machine) and leader leases. */
export async function up(db: Kysely<any>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('bindings')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(128)', (c) => c.notNull().unique())
    .addColumn('spec', 'text', (c) => c.notNull())
    .addColumn('spec_hash', 'varchar(64)', (c) => c.notNull())
    .addColumn('origin', 'varchar(16)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('token_id', 'varchar(32)')
    .addColumn('token_expires_at', 'bigint')
    .addColumn('delivered', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('next_rotation_at', 'bigint')
    .addColumn('rotate_reason', 'varchar(32)')
    .addColumn('last_success_at', 'bigint')
    .addColumn('last_error', 'text')
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('retry_at', 'bigint')
    .addColumn('rotation_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'varchar(128)')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('bindings_next_idx').on('bindings').column('next_rotation_at').execute();

  // Every sink a binding writes or still has to clean up, claimed by one binding only.
  await db.schema
    .createTable('binding_sinks')
    .addColumn('sink_key', 'text', (c) => c.primaryKey())
    .addColumn('binding_id', 'varchar(64)', (c) => c.notNull().references('bindings.id').onDelete('cascade'))
    .execute();
  await db.schema.createIndex('binding_sinks_binding_idx').on('binding_sinks').column('binding_id').execute();

  await db.schema
    .createTable('rotations')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('binding_id', 'varchar(64)', (c) => c.notNull().references('bindings.id').onDelete('cascade'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('reason', 'varchar(32)', (c) => c.notNull())
    .addColumn('step', 'varchar(16)', (c) => c.notNull())
    .addColumn('old_token_id', 'varchar(32)')
    .addColumn('new_token_id', 'varchar(32)')
    .addColumn('new_expires_at', 'bigint', (c) => c.notNull())
    .addColumn('sealed', 'text')
    .addColumn('delivered_at', 'bigint')
    .addColumn('confirmed_at', 'bigint')
    .addColumn('grace_until', 'bigint')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('retry_at', 'bigint', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addColumn('note', 'text')
    .addColumn('started_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('finished_at', 'bigint')
    .execute();
  await db.schema.createIndex('rotations_binding_idx').on('rotations').columns(['binding_id', 'seq']).execute();
  await db.schema.createIndex('rotations_open_idx').on('rotations').columns(['finished_at', 'retry_at']).execute();

  await db.schema
    .createTable('leases')
    .addColumn('name', 'varchar(128)', (c) => c.primaryKey())
    .addColumn('holder', 'varchar(200)', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('fencing', 'bigint', (c) => c.notNull())
    .execute();
}
