import type { Kysely } from 'kysely';
import type { MigrationContext } from './index.js';

export async function up(db: Kysely<any>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('actors')
    .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(128)', (c) => c.notNull().unique())
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('scopes', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'varchar(64)')
    .execute();

  await db.schema
    .createTable('roles')
    .addColumn('name', 'varchar(128)', (c) => c.primaryKey())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('builtin', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('actor_roles')
    .addColumn('actor_id', 'varchar(64)', (c) => c.notNull().references('actors.id').onDelete('cascade'))
    .addColumn('role_name', 'varchar(128)', (c) => c.notNull().references('roles.name').onDelete('cascade'))
    .addPrimaryKeyConstraint('actor_roles_pk', ['actor_id', 'role_name'])
    .execute();

  await db.schema
    .createTable('scopes')
    .addColumn('name', 'varchar(128)', (c) => c.primaryKey())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('builtin', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('tokens')
    .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('actor_id', 'varchar(64)', (c) => c.notNull().references('actors.id'))
    .addColumn('name', 'varchar(200)', (c) => c.notNull())
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'varchar(128)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'varchar(64)')
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .addColumn('revoked_by', 'varchar(64)')
    .addColumn('revoke_reason', 'text')
    .addColumn('replaces', 'varchar(32)')
    .addColumn('binding_id', 'varchar(64)')
    .addColumn('last_used_at', 'bigint')
    .addColumn('last_used_ip', 'varchar(64)')
    .addColumn('last_used_agent', 'varchar(256)')
    .execute();
  await db.schema.createIndex('tokens_actor_idx').on('tokens').column('actor_id').execute();
  await db.schema.createIndex('tokens_revoked_idx').on('tokens').column('revoked_at').execute();
  await db.schema.createIndex('tokens_binding_idx').on('tokens').column('binding_id').execute();
  await db.schema
    .createIndex('tokens_actor_name_live_idx')
    .on('tokens')
    .columns(['actor_id', 'name'])
    .execute();

  await db.schema
    .createTable('audit')
    .addColumn('seq', ctx.engine === 'postgres' ? 'bigserial' : 'integer', (c) =>
      ctx.engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('actor_id', 'varchar(64)')
    .addColumn('actor_name', 'varchar(128)')
    .addColumn('token_id', 'varchar(32)')
    .addColumn('action', 'varchar(64)', (c) => c.notNull())
    .addColumn('target_type', 'varchar(32)', (c) => c.notNull())
    .addColumn('target_id', 'varchar(200)')
    .addColumn('detail', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('source_ip', 'varchar(64)')
    .addColumn('request_id', 'varchar(64)')
    .execute();
  await db.schema.createIndex('audit_at_idx').on('audit').column('at').execute();

  await db.schema
    .createTable('settings')
    .addColumn('key', 'varchar(128)', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}
