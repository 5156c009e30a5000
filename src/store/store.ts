import type { Kysely, Transaction } from 'kysely';
import type { Connection } from './connect.js';
import { notifyGrantsChanged, notifyRevoked } from './pg-notify.js';
import type { ActorTable, AuditTable, Database, RoleTable, ScopeTable, TokenTable } from './schema.js';
import { type LastUseBatch, type VerifyLookup, effectiveScopes } from './verify-lookup.js';

type Db = Kysely<Database> | Transaction<Database>;
export type AuditRow = Omit<AuditTable, 'seq'> & { seq: number };
export type NewAudit = Omit<AuditTable, 'seq'>;

export interface TokenFilter {
  actorId?: string;
  bindingId?: string;
  state?: 'active' | 'revoked' | 'expired';
  now?: number;
  search?: string;
  limit?: number;
}

export interface AuditFilter {
  actorName?: string;
  action?: string;
  targetId?: string;
  since?: number;
  until?: number;
  limit?: number;
  beforeSeq?: number;
}

/** Every query tokenwarden runs, written once for both engines. */
export class Store {
  constructor(private readonly conn: Connection, private readonly db: Db = conn.db) {}

  get engine() {
    return this.conn.engine;
  }
  get location() {
    return this.conn.location;
  }
  get kysely(): Db {
    return this.db;
  }
  /** The verifier's prepared cold-check reads (committed rows only, outside any transaction). */
  get lookup(): VerifyLookup {
    return this.conn.lookup;
  }

  /** Runs `work` in one transaction, so a change is applied whole or not at all. */
  async transaction<T>(work: (store: Store) => Promise<T>): Promise<T> {
    if (this.db !== this.conn.db) return work(this);
    return this.conn.db.transaction().execute((trx) => work(new Store(this.conn, trx)));
  }

  close(): Promise<void> {
    return this.conn.close();
  }

  async ping(): Promise<void> {
    await this.db.selectFrom('settings').select('key').limit(1).execute();
  }

  // settings
  async getSetting(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }
  async putSetting(key: string, value: string): Promise<void> {
    await this.db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }

  // actors
  async insertActor(row: ActorTable): Promise<void> {
    await this.db.insertInto('actors').values(row).execute();
  }
  async updateActor(id: string, patch: Partial<Pick<ActorTable, 'description' | 'disabled' | 'scopes'>>): Promise<void> {
    if (!Object.keys(patch).length) return;
    await this.db.updateTable('actors').set(patch).where('id', '=', id).execute();
    if (patch.disabled !== undefined || patch.scopes !== undefined) await this.grantsChanged(id);
  }
  /**
   * Other processes drop cached verdicts of this actor ("*": of every actor) when this commits:
   * at once on PostgreSQL (pg-notify.ts), and on both engines through the `grant_changes` poll.
   */
  private async grantsChanged(actorId: string): Promise<void> {
    await this.db.insertInto('grant_changes').values({ actor_id: actorId, changed_at: Date.now() }).execute();
    if (this.engine === 'postgres') await notifyGrantsChanged(this.db, actorId);
  }
  async grantChangesSince(since: number): Promise<{ actor_id: string; changed_at: number }[]> {
    return this.db.selectFrom('grant_changes').select(['actor_id', 'changed_at']).where('changed_at', '>=', since).execute();
  }
  /** Rows older than any poll's overlap are of no use to anyone. */
  async pruneGrantChanges(before: number): Promise<void> {
    await this.db.deleteFrom('grant_changes').where('changed_at', '<', before).execute();
  }
  async deleteActor(id: string): Promise<void> {
    await this.db.deleteFrom('actors').where('id', '=', id).execute();
  }
  findActorById(id: string): Promise<ActorTable | undefined> {
    return this.db.selectFrom('actors').selectAll().where('id', '=', id).executeTakeFirst();
  }
  findActorByName(name: string): Promise<ActorTable | undefined> {
    return this.db.selectFrom('actors').selectAll().where('name', '=', name).executeTakeFirst();
  }
  listActors(): Promise<ActorTable[]> {
    return this.db.selectFrom('actors').selectAll().orderBy('name').execute();
  }
  async countActors(): Promise<number> {
    const row = await this.db.selectFrom('actors').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    return Number(row?.n ?? 0);
  }
  async rolesOfActor(actorId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('actor_roles').select('role_name').where('actor_id', '=', actorId).execute();
    return rows.map((r) => r.role_name).sort();
  }
  async roleAssignments(): Promise<Map<string, string[]>> {
    const rows = await this.db.selectFrom('actor_roles').selectAll().execute();
    const out = new Map<string, string[]>();
    for (const r of rows) out.set(r.actor_id, [...(out.get(r.actor_id) ?? []), r.role_name].sort());
    return out;
  }
  /** Union of the actor's direct scopes and those of its roles (as seen by this store, or its transaction). */
  async scopesOfActor(actorId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('actors')
      .leftJoin('actor_roles', 'actor_roles.actor_id', 'actors.id')
      .leftJoin('roles', 'roles.name', 'actor_roles.role_name')
      .select(['actors.scopes as direct', 'roles.scopes as role'])
      .where('actors.id', '=', actorId)
      .execute();
    return effectiveScopes(rows[0]?.direct, rows.map((r) => r.role));
  }
  async setActorRoles(actorId: string, roles: string[]): Promise<void> {
    await this.db.deleteFrom('actor_roles').where('actor_id', '=', actorId).execute();
    if (roles.length) {
      await this.db
        .insertInto('actor_roles')
        .values(roles.map((role_name) => ({ actor_id: actorId, role_name })))
        .execute();
    }
    await this.grantsChanged(actorId);
  }

  // roles and scopes
  async upsertRole(row: RoleTable): Promise<void> {
    const before = await this.findRole(row.name);
    await this.db
      .insertInto('roles')
      .values(row)
      .onConflict((oc) => oc.column('name').doUpdateSet({ scopes: row.scopes, description: row.description }))
      .execute();
    // Built-in roles are re-declared on every start: only a change of scopes changes what anyone may do.
    if (before?.scopes !== row.scopes) await this.grantsChanged('*');
  }
  async insertRole(row: RoleTable): Promise<void> {
    await this.db.insertInto('roles').values(row).execute();
  }
  async deleteRole(name: string): Promise<void> {
    await this.db.deleteFrom('roles').where('name', '=', name).execute();
    await this.grantsChanged('*');
  }
  findRole(name: string): Promise<RoleTable | undefined> {
    return this.db.selectFrom('roles').selectAll().where('name', '=', name).executeTakeFirst();
  }
  listRoles(): Promise<RoleTable[]> {
    return this.db.selectFrom('roles').selectAll().orderBy('name').execute();
  }
  async upsertScope(row: ScopeTable): Promise<void> {
    await this.db
      .insertInto('scopes')
      .values(row)
      .onConflict((oc) => oc.column('name').doUpdateSet({ description: row.description }))
      .execute();
  }
  async insertScope(row: ScopeTable): Promise<void> {
    await this.db.insertInto('scopes').values(row).execute();
  }
  listScopes(): Promise<ScopeTable[]> {
    return this.db.selectFrom('scopes').selectAll().orderBy('name').execute();
  }

  // tokens
  async insertToken(row: TokenTable): Promise<void> {
    await this.db.insertInto('tokens').values(row).execute();
  }
  findToken(id: string): Promise<TokenTable | undefined> {
    return this.db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
  }
  listTokens(filter: TokenFilter = {}): Promise<TokenTable[]> {
    let q = this.db.selectFrom('tokens').selectAll();
    if (filter.actorId) q = q.where('actor_id', '=', filter.actorId);
    if (filter.bindingId) q = q.where('binding_id', '=', filter.bindingId);
    const now = filter.now ?? Date.now();
    if (filter.state === 'revoked') q = q.where('revoked_at', 'is not', null);
    if (filter.state === 'active') q = q.where('revoked_at', 'is', null).where('expires_at', '>', now);
    if (filter.state === 'expired') q = q.where('revoked_at', 'is', null).where('expires_at', '<=', now);
    if (filter.search) q = q.where((eb) => eb.or([eb('name', 'like', `%${filter.search}%`), eb('id', '=', filter.search!)]));
    return q.orderBy('created_at', 'desc').limit(filter.limit ?? 1000).execute();
  }
  async liveTokenNamed(actorId: string, name: string, now: number): Promise<TokenTable | undefined> {
    return this.db
      .selectFrom('tokens')
      .selectAll()
      .where('actor_id', '=', actorId)
      .where('name', '=', name)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
  }
  async revokeToken(id: string, at: number, by: string | null, reason: string | null): Promise<boolean> {
    const res = await this.db
      .updateTable('tokens')
      .set({ revoked_at: at, revoked_by: by, revoke_reason: reason })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    const revoked = Number(res.numUpdatedRows) > 0;
    // Other replicas drop the token from their caches when this commits (see pg-notify.ts).
    if (revoked && this.engine === 'postgres') await notifyRevoked(this.db, id);
    return revoked;
  }
  async shortenExpiry(id: string, at: number): Promise<void> {
    await this.db.updateTable('tokens').set({ expires_at: at }).where('id', '=', id).where('expires_at', '>', at).execute();
  }
  async revokeTokensOfActor(actorId: string, at: number, by: string | null, reason: string): Promise<string[]> {
    const live = await this.db
      .selectFrom('tokens')
      .select('id')
      .where('actor_id', '=', actorId)
      .where('revoked_at', 'is', null)
      .execute();
    for (const t of live) await this.revokeToken(t.id, at, by, reason);
    return live.map((t) => t.id);
  }
  /**
   * Every live token below `ids` in the parent lineage (children, their children, …): what
   * revoking or shortening one of `ids` must take along.
   */
  async liveDescendants(ids: string[]): Promise<{ id: string; expires_at: number }[]> {
    const out: { id: string; expires_at: number }[] = [];
    const seen = new Set(ids);
    let frontier = [...ids];
    while (frontier.length) {
      const rows = await this.db
        .selectFrom('tokens')
        .select(['id', 'expires_at'])
        .where('parent', 'in', frontier)
        .where('revoked_at', 'is', null)
        .execute();
      frontier = [];
      for (const r of rows) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
        out.push(r);
        frontier.push(r.id);
      }
    }
    return out;
  }
  /** Ids revoked at or after `since`: how replicas learn of revocations made elsewhere. */
  async revokedSince(since: number): Promise<{ id: string; revoked_at: number }[]> {
    return this.db
      .selectFrom('tokens')
      .select(['id', 'revoked_at'])
      .where('revoked_at', '>=', since)
      .execute() as Promise<{ id: string; revoked_at: number }[]>;
  }
  async recordLastUse(batch: LastUseBatch): Promise<void> {
    if (!batch.ids.length) return;
    if (this.db !== this.conn.db) throw new Error('recordLastUse runs outside transactions: it writes through the connection itself');
    await this.conn.writeLastUse(batch);
  }

  // audit
  async appendAudit(row: NewAudit): Promise<void> {
    await this.db.insertInto('audit').values(row).execute();
  }
  listAudit(filter: AuditFilter = {}): Promise<AuditRow[]> {
    let q = this.db.selectFrom('audit').selectAll();
    if (filter.actorName) q = q.where('actor_name', '=', filter.actorName);
    if (filter.action) q = q.where('action', 'like', `${filter.action}%`);
    if (filter.targetId) q = q.where('target_id', '=', filter.targetId);
    if (filter.since !== undefined) q = q.where('at', '>=', filter.since);
    if (filter.until !== undefined) q = q.where('at', '<=', filter.until);
    if (filter.beforeSeq !== undefined) q = q.where('seq', '<', filter.beforeSeq);
    return q.orderBy('seq', 'desc').limit(filter.limit ?? 200).execute() as Promise<AuditRow[]>;
  }
}
