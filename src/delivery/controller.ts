import { Authority } from '../authority/authority.js';
import type { SinkSpecT } from '../config/binding-schema.js';
import { type Clock, iso } from '../clock.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../observe/metrics.js';
import { BindingQueries, type BindingTable } from '../store/bindings.js';
import type { Store } from '../store/store.js';
import type { Leadership, LeadershipStatus } from './leader/lease.js';
import { CONTROLLER_PRINCIPAL } from './token-provider.js';
import { LostLeadership, ROTATION_OUTCOMES, type RotationDeps, Rotator, initRotationSeries, safeError } from './rotation/rotation.js';
import { type DeliveredSink, SINK_KINDS, createSink, describeSink, sinkContext } from './sinks/index.js';
import { type SinkState, parseSinkState, sameSinkState } from './bindings/health.js';
import { type BindingRecord, isHealthy, toRecord } from './bindings/spec.js';
import type { Verification } from '../verify/verifier.js';

export interface ControllerOptions {
  intervalMs: number;
  /** How often every sink is read back and compared with the current token (0: never). */
  resyncMs?: number;
  /** Rotations driven at once; sinks are I/O bound, the store serialises its own writes. */
  concurrency?: number;
  /** At most this many due items are picked up per tick. */
  batch?: number;
  /** How often a sink's watch fallback looks (a stat for files, a read for Secrets); default the sink's own (2 s, 5 s). */
  sinkPollMs?: number;
  /** Watch sinks between resyncs (default true); tests of the resync path alone turn it off, so a watch cannot get there first. */
  watchSinks?: boolean;
}

export interface TickReport {
  leader: boolean;
  started: number;
  advanced: number;
  removed: number;
  /** Bindings found with a sink that lost or changed its token, and so rotated. */
  drifted: number;
}

/**
 * Drives every binding: removals first (no live token left behind), then rotations in flight,
 * then bindings whose rotation is due. Only the lease holder acts; every replica keeps the
 * binding gauges fresh from the store. `tick()` is the whole loop body, so tests drive it with
 * a ManualClock; `start()` runs it on a timer in production.
 */
export class DeliveryController {
  readonly rotator: Rotator;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private queued = false;
  private lastGauges = Number.NEGATIVE_INFINITY;
  private lastResync = Number.NEGATIVE_INFINITY;
  lastTickError: string | null = null;
  lastTickAt: number | null = null;

  /** Bindings (by id) to read back on the next pass: a sink watch fired, or their token may have stopped verifying. */
  private readonly suspects = new Set<string>();
  /** Token ids revoked (here or on another replica) since the last pass. */
  private readonly revokedIds = new Set<string>();
  /** An identity's grants or disabled flag changed: every minted binding is read back. */
  private actorsChanged = false;
  /** Sink watches of the bindings this leader delivers, by binding id. */
  private readonly watches = new Map<string, { key: string; stop: () => void }>();

  constructor(
    private readonly deps: Omit<RotationDeps, 'fence'> & {
      leadership: Leadership;
      /** The verifier's side-effect-free decision: whether what a sink holds still verifies (no last use, no failure count). */
      inspect?: (bearer: string) => Promise<Verification>;
    },
    private readonly options: ControllerOptions,
  ) {
    this.rotator = new Rotator({ ...deps, fence: (tx) => deps.leadership.fence(tx) });
  }

  get leading(): boolean {
    return this.deps.leadership.leading;
  }

  private get q(): BindingQueries {
    return new BindingQueries(this.deps.store);
  }

  /** Runs one pass now, after any pass already running (passes never overlap). */
  tick(): Promise<TickReport> {
    const run = this.chain.then(() => this.pass());
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * A token was revoked (the authority's event here, the change watch or NOTIFY from another
   * replica): a binding delivering it is read back and re-delivered on the next pass, at once.
   */
  noticeRevoked(tokenId: string): void {
    this.revokedIds.add(tokenId);
    this.soon();
  }

  /** An identity was disabled or its grants changed: its bindings' tokens may no longer verify, or lack a scope. */
  noticeActorChanged(_actorId: string): void {
    this.actorsChanged = true;
    this.soon();
  }

  /** A sink watch fired: read that binding's sinks back on the next pass. */
  noticeSink(bindingId: string): void {
    this.suspects.add(bindingId);
    this.soon();
  }

  /** A pass now rather than at the next timer tick, when the loop runs (tests drive tick() themselves). */
  private soon(): void {
    if (!this.timer || this.queued) return;
    this.queued = true;
    setImmediate(() => {
      // Stopped meanwhile (stop() has already waited for the passes it knew of): no pass after the store is closed.
      if (!this.timer) return void (this.queued = false);
      void this.tick()
        .catch(() => undefined)
        .finally(() => (this.queued = false));
    });
  }

  /** Asks for a pass soon without waiting for the timer; the API calls this after a change. */
  async kick(): Promise<void> {
    await this.tick().catch(() => undefined);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.queued) return;
      this.queued = true;
      void this.tick()
        .catch(() => undefined)
        .finally(() => (this.queued = false));
    }, this.options.intervalMs);
    this.timer.unref();
    void this.tick().catch(() => undefined);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.chain;
    this.unwatchAll();
    await this.deps.leadership.release();
  }

  /** Who leads the controller, for /readyz (which stays about serving: a standby is ready). */
  leadership(): LeadershipStatus {
    const l = this.deps.leadership;
    return l.status?.() ?? { leading: l.leading, holder: l.leading ? l.holder : null, since: null };
  }

  /** Readiness: the last pass reached the store. */
  health(): { ok: boolean; detail: string } {
    if (this.lastTickError) return { ok: false, detail: `delivery controller: ${this.lastTickError}` };
    return { ok: true, detail: this.leading ? 'leader' : 'standby' };
  }

  private async pass(): Promise<TickReport> {
    const report: TickReport = { leader: false, started: 0, advanced: 0, removed: 0, drifted: 0 };
    try {
      await this.refreshGauges();
      const was = this.leading;
      report.leader = await this.deps.leadership.acquire();
      if (report.leader && !was) this.deps.logger.info({ holder: this.deps.leadership.holder }, 'leading the delivery controller');
      if (report.leader) await this.work(report);
      else this.unwatchAll();
      this.lastTickError = null;
    } catch (err) {
      if (!(err instanceof LostLeadership)) {
        this.lastTickError = safeError(err);
        this.deps.logger.error({ err: this.lastTickError }, 'delivery controller pass failed');
      }
    }
    this.lastTickAt = this.deps.clock.now();
    return report;
  }

  private async work(report: TickReport): Promise<void> {
    const now = this.deps.clock.now();
    const batch = this.options.batch ?? 1000;
    for (const row of await this.q.removing(now)) {
      if (await this.remove(row)) report.removed++;
    }
    const open = await this.q.openRotationsDue(now, batch);
    await this.parallel(open, async (r) => {
      await this.rotator.advance(r.id);
      report.advanced++;
    });
    const rows = await this.q.list();
    this.syncWatches(rows);
    const resyncMs = this.options.resyncMs ?? 0;
    const resync = resyncMs > 0 && now - this.lastResync >= resyncMs;
    if (resync) this.lastResync = now;
    const suspects = this.takeSuspects(rows, resync);
    if (suspects.length) report.drifted = await this.checkSinks(suspects, now);
    const due = await this.q.due(now, batch);
    await this.parallel(due, async (row) => {
      await this.rotator.begin(row);
      report.started++;
    });
  }

  /**
   * Removes a binding whose removal was asked for: revokes every token it minted first (so a
   * leftover file or Secret holds nothing usable), deletes what it delivered, then the row.
   */
  async remove(row: BindingTable): Promise<boolean> {
    const now = this.deps.clock.now();
    const authority = this.deps.authority;
    const revoked = await this.deps.store.transaction(async (tx) => {
      await this.deps.leadership.fence(tx);
      const ids = await new BindingQueries(tx).liveTokenIds(row.id);
      const scoped = authority.within(tx);
      for (const id of ids) await scoped.revokeToken(CONTROLLER_PRINCIPAL, id, `binding ${row.name} removed`);
      return ids;
    });
    for (const id of revoked) authority.events.emit('token-revoked', id);
    const specs = new Map<string, SinkSpecT>();
    const delivered = JSON.parse(row.delivered) as DeliveredSink[];
    // What was delivered first: its entry carries the record (what was last written there).
    for (const s of [...((JSON.parse(row.spec) as { sinks: SinkSpecT[] }).sinks ?? []), ...delivered]) specs.set(describeSink(s), s);
    const errors: string[] = [];
    const left: { sink: string; reason: string }[] = [];
    for (const spec of specs.values()) {
      try {
        const outcome = await (await createSink(spec, this.deps.sinkDeps, row.name, sinkContext(row.origin, delivered, spec))).remove();
        if (outcome && !outcome.removed) left.push({ sink: describeSink(spec), reason: outcome.reason ?? 'left in place' });
      } catch (err) {
        this.deps.metrics.sinkErrors.labels(row.name, spec.kind).inc();
        errors.push(`${describeSink(spec)}: ${safeError(err)}`);
      }
    }
    if (errors.length) {
      const failures = row.failures + 1;
      await this.q.update(row.id, { last_error: `remove: ${errors.join('; ')}`, failures, retry_at: now + this.rotator.backoff(failures), updated_at: now });
      this.deps.logger.warn({ binding: row.name }, `binding removal incomplete, will retry: ${errors.join('; ')}`);
      return false;
    }
    await this.deps.store.transaction(async (tx) => {
      await this.deps.leadership.fence(tx);
      await new BindingQueries(tx).delete(row.id);
      await new Authority(tx, authority.clock, authority.policy).record(CONTROLLER_PRINCIPAL, 'binding.removed', 'binding', row.name, {
        revokedTokens: revoked,
        sinks: [...specs.keys()],
        ...(left.length ? { left } : {}),
      });
    });
    this.forget(row.name);
    for (const l of left) this.deps.logger.warn({ binding: row.name, sink: l.sink }, `binding removed but a sink was left in place: ${l.reason}`);
    this.deps.logger.info({ binding: row.name, revoked }, 'binding removed');
    return true;
  }

  /**
   * The bindings to read back now: every one at a resync (the safety net); otherwise those a sink
   * watch named, those delivering a token just revoked, and every minted one after a change of
   * grants. The notices are consumed.
   */
  private takeSuspects(rows: BindingTable[], all: boolean): BindingTable[] {
    const revoked = new Set(this.revokedIds);
    const actors = this.actorsChanged;
    const named = new Set(this.suspects);
    this.revokedIds.clear();
    this.suspects.clear();
    this.actorsChanged = false;
    return rows.filter(
      (b) =>
        b.state !== 'removing' &&
        b.token_id !== null &&
        (all || named.has(b.id) || revoked.has(b.token_id) || (actors && !(JSON.parse(b.spec) as { source?: unknown }).source)),
    );
  }

  /**
   * Notices what changed behind the controller's back (a token revoked by hand, an identity
   * disabled or short of a scope, a Secret deleted, a file restored from an old backup): each
   * binding's sinks are read and what they hold is checked with the verifier's own decision; the
   * result is kept per sink (`binding show`, the healthy gauge). A settled binding with a sink
   * that does not hold a token that verifies is rotated at once, its reason saying why ("revoked
   * by admin outside the binding", or "drift" for a missing or changed sink). A fresh token rather
   * than the same one again: the current token's plaintext is not kept once it is delivered and
   * confirmed. A sink that cannot be read counts as a sink error and triggers nothing.
   */
  private async checkSinks(rows: BindingTable[], now: number): Promise<number> {
    let drifted = 0;
    await this.parallel(rows, async (row) => {
      const binding = toRecord(row);
      const { states, why, wrong } = await this.readBack(binding, now);
      const sinkState = JSON.stringify(states);
      if (!sameSinkState(parseSinkState(row.sink_state), states)) await this.q.update(row.id, { sink_state: sinkState });
      // 0 from the moment a sink is found wrong, until a delivery puts a verifying token back.
      this.deps.metrics.bindingHealthy.labels(row.name).set(isHealthy({ ...row, sink_state: sinkState }, now) ? 1 : 0);
      if (!wrong.length || why === null) return;
      const settled = row.state === 'active' && row.rotate_reason === null && (row.next_rotation_at === null || row.next_rotation_at > now);
      if (!settled) {
        // A rotation in flight, due or retrying delivers to every sink anyway — unless the token it
        // delivered is the one that stopped verifying: then it would wait for a confirmation that cannot come.
        const open = why !== 'drift' ? await this.q.openRotation(row.id) : undefined;
        if (open && open.delivered_at !== null && open.new_token_id === row.token_id && (await this.rotator.supersede(open.id, why))) {
          this.deps.logger.warn({ binding: row.name, seq: open.seq, reason: why }, 'the token a rotation delivered no longer verifies; starting a fresh rotation');
          drifted++;
        }
        return;
      }
      const marked = await this.deps.store.transaction(async (tx) => {
        await this.deps.leadership.fence(tx);
        const q = new BindingQueries(tx);
        const fresh = await q.byId(row.id);
        // A rotation that started meanwhile delivers to every sink anyway.
        if (!fresh || fresh.state !== 'active' || fresh.token_id !== row.token_id || (await q.openRotation(row.id))) return false;
        await q.update(row.id, { next_rotation_at: now, rotate_reason: why, retry_at: null, updated_at: now });
        await new Authority(tx, this.deps.authority.clock, this.deps.authority.policy).record(CONTROLLER_PRINCIPAL, 'binding.drift', 'binding', row.name, { sinks: wrong, ...(why === 'drift' ? {} : { reason: why }) });
        return true;
      });
      if (!marked) return;
      this.deps.metrics.sinkDrift.labels(row.name).inc();
      this.deps.logger.warn({ binding: row.name, sinks: wrong, reason: why }, 'a delivered token went missing, was changed or no longer verifies; rotating to put a valid one back');
      drifted++;
    });
    return drifted;
  }

  /** What each sink of `binding` holds now, and — when one is wrong — why, in words fit for the rotation's reason. */
  private async readBack(binding: BindingRecord, now: number): Promise<{ states: SinkState[]; why: string | null; wrong: string[] }> {
    const row = binding.row;
    const provider = this.rotator.providerFor(binding);
    const states: SinkState[] = [];
    const wrong: string[] = [];
    let why: string | null = null;
    const verdicts = new Map<string, string | null>(); // plaintext → problem (null: verifies)
    for (const spec of binding.spec.sinks) {
      const sink = describeSink(spec);
      let held: string | null;
      try {
        held = await (await createSink(spec, this.deps.sinkDeps, row.name, sinkContext(row.origin, row.delivered, spec))).read();
      } catch (err) {
        this.deps.metrics.sinkErrors.labels(row.name, spec.kind).inc();
        this.deps.logger.warn({ binding: row.name, sink, err: safeError(err) }, 'cannot read a sink back to check it');
        states.push({ sink, status: 'unreadable', tokenId: null, detail: safeError(err), at: now });
        continue;
      }
      if (held === null) {
        states.push({ sink, status: 'missing', tokenId: null, detail: 'the token is missing', at: now });
        wrong.push(`${sink} is missing`);
        why ??= 'drift';
        continue;
      }
      const id = provider.idOf(held);
      if (id !== row.token_id) {
        states.push({ sink, status: 'other-token', tokenId: id, detail: 'holds another token than the one delivered', at: now });
        wrong.push(`${sink} holds another token`);
        why ??= 'drift';
        continue;
      }
      if (!verdicts.has(held)) verdicts.set(held, await this.problemWith(binding, held, now));
      const problemText = verdicts.get(held)!;
      if (problemText === null) {
        states.push({ sink, status: 'ok', tokenId: id, detail: null, at: now });
        continue;
      }
      states.push({ sink, status: 'invalid', tokenId: id, detail: problemText, at: now });
      wrong.push(`${sink}: ${problemText}`);
      // A token that does not verify is the first thing to say; it also explains the other sinks.
      why = why === null || why === 'drift' ? problemText : why;
    }
    return { states, why, wrong };
  }

  /**
   * Why the current token held by a sink no longer serves, or null when it does: the verifier's
   * decision (revoked, expired, identity disabled), and the binding's scopes still granted. An
   * upstream's token cannot be verified here: only its expiry is known.
   */
  private async problemWith(binding: BindingRecord, held: string, now: number): Promise<string | null> {
    const provider = this.rotator.providerFor(binding);
    if (!provider.verifiable || !this.deps.inspect) {
      const expiresAt = binding.row.token_expires_at;
      return expiresAt !== null && expiresAt <= now ? `expired at ${iso(expiresAt)}` : null;
    }
    const verdict = await this.deps.inspect(held);
    if (verdict.ok) {
      const lacking = (binding.spec.scopes ?? []).filter((sc) => !verdict.identity.scopes.includes(sc));
      return lacking.length ? `identity ${verdict.identity.actorName} no longer holds ${lacking.map((l) => `"${l}"`).join(', ')}` : null;
    }
    if (verdict.reason === 'revoked') {
      const token = binding.row.token_id ? await this.deps.store.findToken(binding.row.token_id) : undefined;
      return `revoked by ${token?.revoked_by ?? 'someone'} outside the binding`;
    }
    if (verdict.reason === 'expired') return 'expired';
    if (verdict.reason === 'disabled') return `identity ${binding.spec.actor} is disabled`;
    return `no longer verifies (${verdict.reason})`;
  }

  /**
   * Keeps one watch per sink of every delivered binding while this process leads: a sink changed
   * behind our back is read back within seconds instead of at the next resync.
   */
  private syncWatches(rows: BindingTable[]): void {
    if (this.options.watchSinks === false) return;
    const live = new Set<string>();
    for (const row of rows) {
      if (row.state === 'removing' || row.token_id === null) continue;
      live.add(row.id);
      const sinks = (JSON.parse(row.spec) as { sinks: SinkSpecT[] }).sinks ?? [];
      const key = sinks.map(describeSink).join('\n');
      const current = this.watches.get(row.id);
      if (current?.key === key) continue;
      current?.stop();
      const stops: (() => void)[] = [];
      const entry = { key, stop: () => stops.forEach((stop) => stop()) };
      this.watches.set(row.id, entry);
      for (const spec of sinks) {
        void createSink(spec, this.deps.sinkDeps, row.name, sinkContext(row.origin, row.delivered, spec))
          .then((sink) => {
            if (this.watches.get(row.id) !== entry) return;
            stops.push(sink.watch(() => this.noticeSink(row.id), { pollMs: this.options.sinkPollMs }));
          })
          .catch((err: unknown) => this.deps.logger.warn({ binding: row.name, sink: describeSink(spec), err: safeError(err) }, 'cannot watch a sink; the resync still checks it'));
      }
    }
    for (const [id, w] of this.watches) {
      if (live.has(id)) continue;
      w.stop();
      this.watches.delete(id);
    }
  }

  private unwatchAll(): void {
    for (const w of this.watches.values()) w.stop();
    this.watches.clear();
  }

  private forget(name: string): void {
    const m = this.deps.metrics;
    m.bindingExpiry.remove(name);
    m.bindingLastSuccess.remove(name);
    m.bindingIssued.remove(name);
    m.bindingNextRotation.remove(name);
    m.bindingHealthy.remove(name);
    m.sinkDrift.remove(name);
    for (const kind of SINK_KINDS) m.sinkErrors.remove(name, kind);
    for (const outcome of ROTATION_OUTCOMES) m.rotations.remove(name, outcome);
  }

  /** Every replica exports the binding gauges (Prometheus may scrape any of them), from the store, at most every 10 s. */
  private async refreshGauges(): Promise<void> {
    const now = this.deps.clock.now();
    if (now - this.lastGauges < 10_000) return;
    this.lastGauges = now;
    const m = this.deps.metrics;
    const issued = await this.q.currentTokenIssuedAt();
    for (const b of await this.q.list()) {
      if (b.state === 'removing') continue;
      if (b.token_expires_at !== null) m.bindingExpiry.labels(b.name).set(b.token_expires_at / 1000);
      const at = issued.get(b.id);
      if (at !== undefined) m.bindingIssued.labels(b.name).set(at / 1000);
      if (b.next_rotation_at !== null) m.bindingNextRotation.labels(b.name).set(b.next_rotation_at / 1000);
      if (b.last_success_at !== null) m.bindingLastSuccess.labels(b.name).set(b.last_success_at / 1000);
      m.bindingHealthy.labels(b.name).set(isHealthy(b, now) ? 1 : 0);
      initRotationSeries(m, b.name);
    }
  }

  private async parallel<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const lanes = Math.max(1, Math.min(this.options.concurrency ?? 8, items.length));
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        while (next < items.length) {
          const item = items[next++];
          try {
            await work(item);
          } catch (err) {
            if (err instanceof LostLeadership) return;
            this.deps.logger.error({ err: safeError(err) }, 'delivery work item failed');
          }
        }
      }),
    );
  }
}
