import { randomUUID } from 'node:crypto';
import { Authority, type Principal } from '../../authority/authority.js';
import { BINDING_FIELDS } from '../../authority/issuance.js';
import { type BindingSpec, takeoverWarning } from '../../config/binding-schema.js';
import { type Clock, iso } from '../../clock.js';
import { Problem, problem } from '../../errors.js';
import type { Logger } from '../../log.js';
import { BindingQueries, type BindingTable, type RotationTable } from '../../store/bindings.js';
import type { Store } from '../../store/store.js';
import { CONTROLLER_PRINCIPAL, type SourceProviderFactory } from '../token-provider.js';
import { parseSinkState } from './health.js';
import { type SinkDeps, createSink, describeSink, sinkContext } from '../sinks/index.js';
import { type BindingRecord, isHealthy, nextRotationAt, normalizeSpec, specHash, toRecord, tokenShape } from './spec.js';

export interface BindingView {
  name: string;
  origin: 'config' | 'api';
  state: BindingTable['state'];
  healthy: boolean;
  /** Null for a source binding: it mints nothing. */
  actor: string | null;
  scopes: string[];
  lifetime: string | number | null;
  sinks: BindingSpec['sinks'];
  rotation: BindingSpec['rotation'];
  restart: NonNullable<BindingSpec['restart']>;
  /** Only the kind: a source's settings may hold credentials. */
  source: { kind: string } | null;
  description: string | null;
  tokenId: string | null;
  expiresAt: string | null;
  nextRotationAt: string | null;
  lastSuccessAt: string | null;
  lastError: string | null;
  failures: number;
  rotations: number;
  inFlight: { seq: number; step: string; startedAt: string; attempts: number; lastError: string | null } | null;
  /**
   * When the controller acts on this binding next: the retry of a failing step or start while
   * failing (`retrying` true), else the scheduled rotation. Never a time already past while retrying.
   */
  nextAttemptAt: string | null;
  retrying: boolean;
  /** What each sink holds, as last written or read back: which one fails, and that the others hold a valid token. */
  sinkStates: SinkStateView[];
  /** How the last finished rotation ended (success, expired-before-confirm, …); null before the first. */
  lastOutcome: string | null;
  createdAt: string;
  updatedAt: string;
  /** Only in the answer to a create or apply: what is accepted but risky (takeoverWarning). */
  warnings?: string[];
}

export interface SinkStateView {
  sink: string;
  /** SinkStatus (health.ts), 'expired' once the token it holds has expired, or 'unknown' before the first write or check. */
  status: string;
  tokenId: string | null;
  detail: string | null;
  checkedAt: string | null;
}

export interface RotationView {
  seq: number;
  reason: string;
  step: string;
  /** How it ended; null while in flight (and for rotations recorded before outcomes were kept). */
  outcome: string | null;
  oldTokenId: string | null;
  newTokenId: string | null;
  startedAt: string;
  deliveredAt: string | null;
  confirmedAt: string | null;
  finishedAt: string | null;
  attempts: number;
  lastError: string | null;
  note: string | null;
}

export interface BindingServiceDeps {
  store: Store;
  authority: Authority;
  clock: Clock;
  logger: Logger;
  sinkDeps: SinkDeps;
  maxLifetimeMs: number;
  /** delivery.leaseTtl plus a tick: a token with less left at rotation gets a warning (takeoverWarning). */
  takeoverMs?: number;
  sourceProvider?: SourceProviderFactory;
  /** Runs a controller pass (when this process leads) so a change takes effect before the answer. */
  kick?: () => Promise<void>;
}

/**
 * Bindings as the API, the CLI and the config file see them. Every change is checked first
 * (names the field at fault), applied in one transaction and audited; the controller does the
 * delivery work.
 */
export class BindingService {
  constructor(private readonly deps: BindingServiceDeps) {}

  private get q(): BindingQueries {
    return new BindingQueries(this.deps.store);
  }

  async list(p: Principal): Promise<BindingView[]> {
    const rows = await this.q.list();
    return Promise.all(rows.map((r) => this.view(r)));
  }

  async get(p: Principal, name: string): Promise<BindingView> {
    return this.view(await this.row(name));
  }

  async history(p: Principal, name: string, limit = 50): Promise<RotationView[]> {
    const row = await this.row(name);
    return (await this.q.history(row.id, limit)).map(toRotationView);
  }

  async create(p: Principal, spec: BindingSpec): Promise<BindingView> {
    const normal = await this.validate(p, spec);
    await this.deps.store.transaction(async (tx) => {
      const q = new BindingQueries(tx);
      if (await q.byName(spec.name)) throw problem.conflict(`a binding named "${spec.name}" already exists; use apply (PUT) to change it`, 'name');
      const row = this.newRow(normal.spec, 'api', p.actorName);
      await q.insert(row);
      await q.claimSinks(row.id, normal.spec.sinks.map(describeSink));
      await this.audit(tx, p, 'binding.create', spec.name, summary(normal.spec));
    });
    await this.deps.kick?.();
    return this.warned(await this.view(await this.row(spec.name)), normal);
  }

  /** The answer to a create or apply, with takeoverWarning when it applies (also logged). */
  private warned(view: BindingView, normal: ReturnType<typeof normalizeSpec>): BindingView {
    const warning = this.deps.takeoverMs === undefined ? null : takeoverWarning(normal.lifetimeMs, normal.policy, this.deps.takeoverMs);
    if (!warning) return view;
    this.deps.logger.warn({ binding: view.name }, `binding ${view.name}: ${warning}`);
    return { ...view, warnings: [`lifetime: ${warning}`] };
  }

  /** Creates or replaces (`apply`). A change to who, what or where rotates at once; a policy change only reschedules. */
  async put(p: Principal, name: string, spec: BindingSpec): Promise<{ view: BindingView; created: boolean }> {
    if (spec.name !== name) throw problem.invalid('name', `the body names "${spec.name}" but the path names "${name}"`);
    const existing = await this.q.byName(name);
    if (!existing) return { view: await this.create(p, spec), created: true };
    if (existing.origin === 'config') throw problem.conflict(`binding "${name}" is declared in the config file; change it there`, 'name');
    const normal = await this.validate(p, spec, existing.id);
    await this.deps.store.transaction(async (tx) => {
      await this.applyChange(tx, existing, normal.spec);
      await this.audit(tx, p, 'binding.update', name, summary(normal.spec));
    });
    await this.deps.kick?.();
    return { view: this.warned(await this.view(await this.row(name)), normal), created: false };
  }

  /** Marks the binding for removal; the controller revokes its tokens and deletes what it delivered. */
  async delete(p: Principal, name: string, options: { configOwned?: boolean } = {}): Promise<{ name: string; state: 'removed' | 'removing'; lastError: string | null }> {
    const row = await this.row(name);
    if (row.origin === 'config' && !options.configOwned) throw problem.conflict(`binding "${name}" is declared in the config file; remove it there`, 'name');
    await this.deps.store.transaction(async (tx) => {
      await new BindingQueries(tx).update(row.id, { state: 'removing', retry_at: null, failures: 0, updated_at: this.deps.clock.now() });
      await this.audit(tx, p, 'binding.delete', name, {});
    });
    await this.deps.kick?.();
    const after = await this.q.byId(row.id);
    return after ? { name, state: 'removing', lastError: after.last_error } : { name, state: 'removed', lastError: null };
  }

  async rotate(p: Principal, name: string): Promise<BindingView> {
    const row = await this.row(name);
    if (row.state === 'removing') throw problem.conflict(`binding "${name}" is being removed`);
    const open = await this.q.openRotation(row.id);
    if (open) throw problem.conflict(`binding "${name}" is already rotating (rotation ${open.seq} is at step "${open.step}"); see its history`);
    await this.deps.store.transaction(async (tx) => {
      await new BindingQueries(tx).update(row.id, { next_rotation_at: this.deps.clock.now(), rotate_reason: 'manual', retry_at: null, updated_at: this.deps.clock.now() });
      await this.audit(tx, p, 'binding.rotate', name, {});
    });
    await this.deps.kick?.();
    return this.view(await this.row(name));
  }

  /**
   * Brings the bindings declared in the config file into the store: creates, updates, and
   * removes config-declared bindings no longer listed. A binding whose identity or sink is not
   * ready yet is still stored and reported as failing (retried), so that a first start with a
   * config file never deadlocks on "create the identity first".
   */
  async reconcileConfig(specs: BindingSpec[]): Promise<{ created: string[]; updated: string[]; removed: string[]; problems: string[] }> {
    const out = { created: [] as string[], updated: [] as string[], removed: [] as string[], problems: [] as string[] };
    const wanted = new Set(specs.map((s) => s.name));
    for (const [i, spec] of specs.entries()) {
      let normal: ReturnType<typeof normalizeSpec>;
      try {
        normal = normalizeSpec(spec);
      } catch (err) {
        if (err instanceof Problem) throw new Problem('validation', `binding "${spec.name}": ${err.detail}`, { field: `bindings.${i}.${err.extra.field ?? ''}` });
        throw err;
      }
      const existing = await this.q.byName(spec.name);
      let problemText: string | null = null;
      try {
        await this.validate(null, normal.spec, existing?.id);
      } catch (err) {
        if (!(err instanceof Problem)) throw err;
        problemText = `${err.extra.field ? `${err.extra.field}: ` : ''}${err.detail}`;
        out.problems.push(`bindings "${spec.name}": ${problemText}`);
      }
      await this.deps.store.transaction(async (tx) => {
        const q = new BindingQueries(tx);
        if (!existing) {
          const row = this.newRow(normal.spec, 'config', 'config');
          await q.insert({ ...row, ...(problemText ? { state: 'failing' as const, last_error: problemText } : {}) });
          if (!problemText) await q.claimSinks(row.id, normal.spec.sinks.map(describeSink));
          await this.audit(tx, CONTROLLER_PRINCIPAL, 'binding.create', spec.name, { ...summary(normal.spec), origin: 'config' });
          out.created.push(spec.name);
        } else if (existing.spec_hash !== specHash(normal.spec) || existing.origin !== 'config' || existing.state === 'removing') {
          await this.applyChange(tx, existing, normal.spec);
          await q.update(existing.id, { origin: 'config', ...(existing.state === 'removing' ? { state: 'pending' as const } : {}) });
          await this.audit(tx, CONTROLLER_PRINCIPAL, 'binding.update', spec.name, { ...summary(normal.spec), origin: 'config' });
          out.updated.push(spec.name);
        }
      });
    }
    for (const row of await this.q.list()) {
      if (row.origin !== 'config' || wanted.has(row.name) || row.state === 'removing') continue;
      await this.deps.store.transaction(async (tx) => {
        await new BindingQueries(tx).update(row.id, { state: 'removing', retry_at: null, updated_at: this.deps.clock.now() });
        await this.audit(tx, CONTROLLER_PRINCIPAL, 'binding.delete', row.name, { origin: 'config', why: 'no longer in the config file' });
      });
      out.removed.push(row.name);
    }
    return out;
  }

  /**
   * Everything a binding needs to work, checked before anything is stored: the spec's own
   * rules, the issuance policy (the identity, its scopes, the caller's right to hand that identity
   * and those scopes out, the lifetime), each sink (a writable directory, an existing namespace), and no sink shared with
   * another binding. `p` null: the config file (no caller to check).
   */
  async validate(p: Principal | null, spec: BindingSpec, selfId?: string): Promise<ReturnType<typeof normalizeSpec>> {
    const normal = normalizeSpec(spec);
    if (normal.spec.source) {
      if (!this.deps.sourceProvider) throw problem.invalid('source.kind', `source kind "${normal.spec.source.kind}" is not available in this build`);
      this.deps.sourceProvider({ id: selfId ?? 'new', name: spec.name, spec: normal.spec, lifetimeMs: normal.lifetimeMs, policy: normal.policy, row: null as never } satisfies BindingRecord);
    } else {
      // normalizeSpec made sure a minting binding names all three. The issuance policy decides
      // who may bind which identity with which scopes for how long (the config file: p null, trusted
      // as the host owner, still held to the identity's grants and the lifetime limit).
      const spec = normal.spec as BindingSpec & Required<Pick<BindingSpec, 'actor' | 'scopes' | 'lifetime'>>;
      const issuance = this.deps.authority.issuance;
      const actor = await issuance.identity(this.deps.store, spec.actor, BINDING_FIELDS);
      await issuance.decide(this.deps.store, p, actor, { scopes: spec.scopes, lifetimeMs: normal.lifetimeMs, bindingId: selfId ?? 'new' }, BINDING_FIELDS);
    }
    const taken = new Map((await this.q.sinkOwners(normal.spec.sinks.map(describeSink), selfId)).map((o) => [o.sink_key, o.name]));
    // A sink's own rules (file confinement, no foreign file or Secret) need who declares the binding and what it delivered before.
    const origin = p ? 'api' : 'config';
    const delivered = (selfId && (await this.q.byId(selfId))?.delivered) || '[]';
    for (const [i, sinkSpec] of normal.spec.sinks.entries()) {
      const owner = taken.get(describeSink(sinkSpec));
      if (owner) throw problem.conflict(`sinks.${i} (${describeSink(sinkSpec)}) is already used by binding "${owner}"`, `sinks.${i}`);
      let sink;
      try {
        sink = await createSink(sinkSpec, this.deps.sinkDeps, spec.name, sinkContext(origin, delivered, sinkSpec));
        await sink.check?.();
      } catch (err) {
        if (err instanceof Problem) {
          const field = `sinks.${i}${err.extra.field ? `.${err.extra.field}` : ''}`;
          throw new Problem(err.kind === 'unavailable' ? 'validation' : err.kind, `sinks.${i} (${describeSink(sinkSpec)}): ${err.detail}`, { field });
        }
        throw problem.invalid(`sinks.${i}`, `sinks.${i} (${describeSink(sinkSpec)}) cannot be used: ${(err as Error).message}`);
      }
    }
    return normal;
  }

  private newRow(spec: BindingSpec, origin: 'config' | 'api', by: string): BindingTable {
    const now = this.deps.clock.now();
    return {
      id: randomUUID(),
      name: spec.name,
      spec: JSON.stringify(spec),
      spec_hash: specHash(spec),
      origin,
      state: 'pending',
      token_id: null,
      token_expires_at: null,
      delivered: '[]',
      next_rotation_at: now, // the first delivery happens at once
      rotate_reason: 'initial',
      last_success_at: null,
      last_error: null,
      failures: 0,
      retry_at: null,
      rotation_count: 0,
      created_at: now,
      created_by: by,
      updated_at: now,
    };
  }

  private async applyChange(tx: Store, existing: BindingTable, spec: BindingSpec): Promise<void> {
    const now = this.deps.clock.now();
    const before = JSON.parse(existing.spec) as BindingSpec;
    const patch: Partial<BindingTable> = { spec: JSON.stringify(spec), spec_hash: specHash(spec), updated_at: now, retry_at: null, failures: 0 };
    if (tokenShape(before) !== tokenShape(spec) || existing.token_id === null) {
      patch.next_rotation_at = now;
      patch.rotate_reason = existing.token_id === null ? 'initial' : 'spec-change';
    } else if (existing.token_id) {
      const token = await tx.findToken(existing.token_id);
      if (token) patch.next_rotation_at = nextRotationAt(token.created_at, token.expires_at, normalizeSpec(spec).policy);
    }
    await new BindingQueries(tx).update(existing.id, patch);
    // Sinks dropped from the spec stay claimed until the next delivery has removed them.
    const delivered = JSON.parse(existing.delivered) as BindingSpec['sinks'];
    await new BindingQueries(tx).claimSinks(existing.id, [...spec.sinks, ...delivered].map(describeSink));
  }

  private async row(name: string): Promise<BindingTable> {
    const row = await this.q.byName(name);
    if (!row) throw problem.notFound('binding', name);
    return row;
  }


  private async audit(tx: Store, p: Principal, action: string, name: string, detail: Record<string, unknown>): Promise<void> {
    await new Authority(tx, this.deps.authority.clock, this.deps.authority.policy).record(p, action, 'binding', name, detail);
  }

  async view(row: BindingTable): Promise<BindingView> {
    let record: BindingRecord | null = null;
    try {
      record = toRecord(row);
    } catch {
      /* a spec stored by an older version: show what is there */
    }
    const spec = record?.spec ?? (JSON.parse(row.spec) as BindingSpec);
    const open = await this.q.openRotation(row.id);
    const now = this.deps.clock.now();
    // The last finished rotation (one may be in flight after it).
    const last = (await this.q.history(row.id, 2)).find((r) => r.finished_at !== null);
    // A failing step waits for its retry; a failing start waits for the binding's retry_at.
    const retryAt = open ? (open.attempts > 0 || open.last_error ? open.retry_at : null) : row.state === 'failing' || row.state === 'gone' ? row.retry_at : null;
    const retrying = retryAt !== null;
    const nextAttempt = retrying ? Math.max(retryAt, now) : open ? open.retry_at : row.next_rotation_at;
    const recorded = new Map(parseSinkState(row.sink_state).map((st) => [st.sink, st]));
    const sinkStates = spec.sinks.map((sinkSpec): SinkStateView => {
      const key = describeSink(sinkSpec);
      const st = recorded.get(key);
      if (!st) return { sink: key, status: 'unknown', tokenId: null, detail: null, checkedAt: null };
      // A token found valid earlier may have expired since.
      const expired = st.status === 'ok' && st.tokenId === row.token_id && row.token_expires_at !== null && row.token_expires_at <= now;
      return { sink: key, status: expired ? 'expired' : st.status, tokenId: st.tokenId, detail: expired ? `expired at ${iso(row.token_expires_at)}` : st.detail, checkedAt: iso(st.at) };
    });
    return {
      name: row.name,
      origin: row.origin,
      state: row.state,
      healthy: isHealthy(row, now),
      actor: spec.actor ?? null,
      scopes: spec.scopes ?? [],
      lifetime: spec.lifetime ?? null,
      sinks: spec.sinks,
      rotation: spec.rotation,
      restart: spec.restart ?? [],
      source: spec.source ? { kind: spec.source.kind } : null,
      description: spec.description ?? null,
      tokenId: row.token_id,
      expiresAt: iso(row.token_expires_at),
      nextRotationAt: iso(row.next_rotation_at),
      lastSuccessAt: iso(row.last_success_at),
      lastError: row.last_error,
      failures: row.failures,
      rotations: row.rotation_count,
      inFlight: open ? { seq: open.seq, step: open.step, startedAt: iso(open.started_at)!, attempts: open.attempts, lastError: open.last_error } : null,
      nextAttemptAt: iso(nextAttempt),
      retrying,
      sinkStates,
      lastOutcome: last?.outcome ?? (last ? (last.step === 'done' ? 'success' : last.step) : null),
      createdAt: iso(row.created_at)!,
      updatedAt: iso(row.updated_at)!,
    };
  }
}

function summary(spec: BindingSpec): Record<string, unknown> {
  return { actor: spec.actor, scopes: spec.scopes, lifetime: spec.lifetime, sinks: spec.sinks.map(describeSink), ...(spec.source ? { source: spec.source.kind } : {}) };
}

export function toRotationView(r: RotationTable): RotationView {
  return {
    seq: r.seq,
    reason: r.reason,
    step: r.step,
    outcome: r.outcome ?? (r.finished_at === null ? null : r.step === 'done' ? 'success' : r.step),
    oldTokenId: r.old_token_id,
    newTokenId: r.new_token_id,
    startedAt: iso(r.started_at)!,
    deliveredAt: iso(r.delivered_at),
    confirmedAt: iso(r.confirmed_at),
    finishedAt: iso(r.finished_at),
    attempts: r.attempts,
    lastError: r.last_error,
    note: r.note,
  };
}
