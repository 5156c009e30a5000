import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';
import type { Store } from './store.js';

/** Timestamps are epoch milliseconds. `spec` and `delivered` are JSON text. */
export interface BindingTable {
  id: string;
  name: string;
  spec: string;
  spec_hash: string;
  /** 'config' (declared in the config file, reconciled at start) or 'api'. */
  origin: 'config' | 'api';
  state: BindingState;
  /** The token delivered now (null before the first delivery). */
  token_id: string | null;
  token_expires_at: number | null;
  /** JSON array of sink specs written at least once and not yet removed: what removal must clean up. */
  delivered: string;
  next_rotation_at: number | null;
  /** Why the next rotation was asked for early ('manual', 'spec-change'); null for a scheduled one. */
  rotate_reason: string | null;
  last_success_at: number | null;
  last_error: string | null;
  failures: number;
  /** Removal retries wait until this time after a failure. */
  retry_at: number | null;
  rotation_count: number;
  /** JSON array of SinkState (delivery/bindings/health.ts): what each sink held when last written or checked; null before. */
  sink_state?: string | null;
  created_at: number;
  created_by: string | null;
  updated_at: number;
}

/** `gone`: the binding's source is gone (its Secret deleted: an offboarded user); retried, reported unhealthy. */
export type BindingState = 'pending' | 'active' | 'rotating' | 'failing' | 'gone' | 'removing';

/** One rotation: mint → deliver → (restart) → confirm → grace → revoke → done. Each step is committed before the next starts. */
export interface RotationTable {
  id: string;
  binding_id: string;
  seq: number;
  reason: string;
  step: RotationStep;
  old_token_id: string | null;
  new_token_id: string | null;
  new_expires_at: number;
  /** The new token, sealed with AES-256-GCM, kept until it is delivered and confirmed. */
  sealed: string | null;
  delivered_at: number | null;
  confirmed_at: number | null;
  grace_until: number | null;
  attempts: number;
  retry_at: number;
  last_error: string | null;
  note: string | null;
  started_at: number;
  updated_at: number;
  finished_at: number | null;
  /** How a finished rotation ended (RotationOutcome); null while in flight, and for rotations from before outcomes were kept. */
  outcome?: string | null;
  /** Expiry of the token this rotation replaces, as the binding knew it when the rotation began. */
  old_expires_at?: number | null;
}

export type RotationStep = 'deliver' | 'restart' | 'confirm' | 'grace' | 'revoke' | 'done' | 'abandoned';

export interface LeaseTable {
  name: string;
  holder: string;
  expires_at: number;
  /** Incremented on every change of holder, so a deposed leader's late writes can be refused. */
  fencing: number;
}

export interface BindingSinkTable {
  /** "file:/path" or "secret:namespace/name#key". */
  sink_key: string;
  binding_id: string;
}

export interface DeliveryDatabase extends Database {
  bindings: BindingTable;
  binding_sinks: BindingSinkTable;
  rotations: RotationTable;
  leases: LeaseTable;
}

type Db = Kysely<DeliveryDatabase> | Transaction<DeliveryDatabase>;

/** The delivery queries, on the same store (and transaction) as everything else. */
export class BindingQueries {
  constructor(readonly store: Store) {}

  private get db(): Db {
    return this.store.kysely as unknown as Db;
  }

  /** The same queries inside `store`'s transaction. */
  static of(store: Store): BindingQueries {
    return new BindingQueries(store);
  }

  // bindings
  async insert(row: BindingTable): Promise<void> {
    await this.db.insertInto('bindings').values(row).execute();
  }
  async update(id: string, patch: Partial<Omit<BindingTable, 'id'>>): Promise<void> {
    if (!Object.keys(patch).length) return;
    await this.db.updateTable('bindings').set(patch).where('id', '=', id).execute();
  }
  /** Changes the binding only while it is not being removed; false when it is (or is gone). */
  async updateUnlessRemoving(id: string, patch: Partial<Omit<BindingTable, 'id'>>): Promise<boolean> {
    const res = await this.db.updateTable('bindings').set(patch).where('id', '=', id).where('state', '!=', 'removing').executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }
  async delete(id: string): Promise<void> {
    await this.db.deleteFrom('rotations').where('binding_id', '=', id).execute();
    await this.db.deleteFrom('binding_sinks').where('binding_id', '=', id).execute();
    await this.db.deleteFrom('bindings').where('id', '=', id).execute();
  }
  byName(name: string): Promise<BindingTable | undefined> {
    return this.db.selectFrom('bindings').selectAll().where('name', '=', name).executeTakeFirst();
  }
  byId(id: string): Promise<BindingTable | undefined> {
    return this.db.selectFrom('bindings').selectAll().where('id', '=', id).executeTakeFirst();
  }
  list(): Promise<BindingTable[]> {
    return this.db.selectFrom('bindings').selectAll().orderBy('name').execute();
  }
  /** Bindings whose next rotation is due and that have no rotation in flight. */
  due(now: number, limit: number): Promise<BindingTable[]> {
    return this.db
      .selectFrom('bindings')
      .selectAll()
      .where('state', '!=', 'removing')
      .where('next_rotation_at', '<=', now)
      .where((eb) => eb.or([eb('retry_at', 'is', null), eb('retry_at', '<=', now)]))
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('rotations')
              .select('rotations.id')
              .whereRef('rotations.binding_id', '=', 'bindings.id')
              .where('rotations.finished_at', 'is', null),
          ),
        ),
      )
      .orderBy('next_rotation_at')
      .limit(limit)
      .execute();
  }
  removing(now: number): Promise<BindingTable[]> {
    return this.db
      .selectFrom('bindings')
      .selectAll()
      .where('state', '=', 'removing')
      .where((eb) => eb.or([eb('retry_at', 'is', null), eb('retry_at', '<=', now)]))
      .execute();
  }

  /** Replaces the binding's claim on its sinks (the primary key keeps one binding per file or Secret key). */
  async claimSinks(bindingId: string, keys: string[]): Promise<void> {
    await this.db.deleteFrom('binding_sinks').where('binding_id', '=', bindingId).execute();
    const unique = [...new Set(keys)];
    if (unique.length) await this.db.insertInto('binding_sinks').values(unique.map((sink_key) => ({ sink_key, binding_id: bindingId }))).execute();
  }
  /** Which other binding holds any of these sinks. */
  async sinkOwners(keys: string[], exceptBindingId?: string): Promise<{ sink_key: string; name: string }[]> {
    if (!keys.length) return [];
    let q = this.db
      .selectFrom('binding_sinks')
      .innerJoin('bindings', 'bindings.id', 'binding_sinks.binding_id')
      .select(['binding_sinks.sink_key', 'bindings.name'])
      .where('binding_sinks.sink_key', 'in', keys);
    if (exceptBindingId) q = q.where('binding_sinks.binding_id', '!=', exceptBindingId);
    return q.execute();
  }

  // rotations
  async insertRotation(row: RotationTable): Promise<void> {
    await this.db.insertInto('rotations').values(row).execute();
  }
  async updateRotation(id: string, patch: Partial<Omit<RotationTable, 'id'>>): Promise<void> {
    await this.db.updateTable('rotations').set(patch).where('id', '=', id).execute();
  }
  rotation(id: string): Promise<RotationTable | undefined> {
    return this.db.selectFrom('rotations').selectAll().where('id', '=', id).executeTakeFirst();
  }
  openRotation(bindingId: string): Promise<RotationTable | undefined> {
    return this.db.selectFrom('rotations').selectAll().where('binding_id', '=', bindingId).where('finished_at', 'is', null).executeTakeFirst();
  }
  /** Rotations in flight whose next attempt is due, oldest first. */
  openRotationsDue(now: number, limit: number): Promise<RotationTable[]> {
    return this.db
      .selectFrom('rotations')
      .selectAll()
      .where('finished_at', 'is', null)
      .where('retry_at', '<=', now)
      .orderBy('retry_at')
      .limit(limit)
      .execute();
  }
  history(bindingId: string, limit = 50): Promise<RotationTable[]> {
    return this.db.selectFrom('rotations').selectAll().where('binding_id', '=', bindingId).orderBy('seq', 'desc').limit(limit).execute();
  }
  /** For each binding, when the token it delivers now was minted or fetched: the start of the rotation that brought it. */
  async currentTokenIssuedAt(): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom('rotations')
      .innerJoin('bindings', (j) => j.onRef('bindings.id', '=', 'rotations.binding_id').onRef('bindings.token_id', '=', 'rotations.new_token_id'))
      .select(['rotations.binding_id', 'rotations.started_at'])
      .execute();
    return new Map(rows.map((r) => [r.binding_id, Number(r.started_at)]));
  }
  /** Live tokens minted for a binding (every one of them must be revoked on removal). */
  async liveTokenIds(bindingId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('tokens').select('id').where('binding_id', '=', bindingId).where('revoked_at', 'is', null).execute();
    return rows.map((r) => r.id);
  }
  async tokenUse(id: string): Promise<{ last_used_at: number | null; expires_at: number; revoked_at: number | null } | undefined> {
    return this.db.selectFrom('tokens').select(['last_used_at', 'expires_at', 'revoked_at']).where('id', '=', id).executeTakeFirst();
  }

  // leases: a conditional update, so that it works the same on SQLite and PostgreSQL.
  async acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<{ held: boolean; fencing: number; holder: string; expiresAt: number }> {
    const expires = now + ttlMs;
    await this.db
      .insertInto('leases')
      .values({ name, holder, expires_at: expires, fencing: 1 })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    // Renew our own lease, or take over one that has expired (bumping the fencing token).
    await this.db.updateTable('leases').set({ expires_at: expires }).where('name', '=', name).where('holder', '=', holder).execute();
    await this.db
      .updateTable('leases')
      .set((eb) => ({ holder, expires_at: expires, fencing: eb('fencing', '+', 1) }))
      .where('name', '=', name)
      .where('holder', '!=', holder)
      .where('expires_at', '<', now)
      .execute();
    const row = await this.db.selectFrom('leases').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
    return { held: row.holder === holder, fencing: Number(row.fencing), holder: row.holder, expiresAt: Number(row.expires_at) };
  }
  /**
   * Takes the lease from `from`, whatever its expiry, if it still names `from` (the caller has
   * proved that holder dead); of two processes racing, the second finds another holder.
   */
  async takeOverLease(name: string, from: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
    const res = await this.db
      .updateTable('leases')
      .set((eb) => ({ holder, expires_at: now + ttlMs, fencing: eb('fencing', '+', 1) }))
      .where('name', '=', name)
      .where('holder', '=', from)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }
  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db.updateTable('leases').set({ expires_at: 0 }).where('name', '=', name).where('holder', '=', holder).execute();
  }
  /** True while `holder` still holds the lease with this fencing token. */
  async holdsLease(name: string, holder: string, fencing: number, now: number): Promise<boolean> {
    let q = this.db.selectFrom('leases').select(['holder', 'fencing', 'expires_at']).where('name', '=', name);
    // PostgreSQL (read committed): lock the row for the rest of the caller's transaction, so a
    // takeover waits until this step commits instead of slipping in between check and commit.
    // SQLite needs nothing: a takeover committed meanwhile makes this transaction's write fail.
    if (this.store.engine === 'postgres') q = q.forShare();
    const row = await q.executeTakeFirst();
    return !!row && row.holder === holder && Number(row.fencing) === fencing && Number(row.expires_at) >= now;
  }
}
