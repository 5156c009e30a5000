import { Authority } from '../authority/authority.js';
import type { SinkSpecT } from '../config/binding-schema.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { BindingQueries, type BindingTable } from '../store/bindings.js';
import type { Store } from '../store/store.js';
import type { Leadership, LeadershipStatus } from './lease.js';
import { CONTROLLER_PRINCIPAL } from './provider.js';
import { LostLeadership, type RotationDeps, Rotator, initRotationSeries, safeError } from './rotation.js';
import { type DeliveredSink, SINK_KINDS, createSink, describeSink, sinkContext } from './sinks/index.js';
import { isHealthy, toRecord } from './spec.js';

export interface ControllerOptions {
  intervalMs: number;
  /** How often every sink is read back and compared with the current token (0: never). */
  resyncMs?: number;
  /** Rotations driven at once; sinks are I/O bound, the store serialises its own writes. */
  concurrency?: number;
  /** At most this many due items are picked up per tick. */
  batch?: number;
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

  constructor(
    private readonly deps: Omit<RotationDeps, 'fence'> & { leadership: Leadership },
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
    const resyncMs = this.options.resyncMs ?? 0;
    if (resyncMs > 0 && now - this.lastResync >= resyncMs) {
      this.lastResync = now;
      report.drifted = await this.markDrift(now);
    }
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
   * Notices what changed behind the controller's back between rotations (a Secret deleted by
   * hand, a file restored from an old backup, a namespace recreated): every settled binding's
   * sinks are read, and a binding with one that is missing or holds another token is rotated at
   * once, reason "drift". A fresh token rather than the same one again, because the current
   * token's plaintext is not kept once it is delivered and confirmed. A sink that cannot be read
   * (no access, API down) counts as a sink error and triggers nothing.
   */
  private async markDrift(now: number): Promise<number> {
    const settled = (await this.q.list()).filter((b) => b.state === 'active' && b.token_id !== null && b.rotate_reason === null && (b.next_rotation_at === null || b.next_rotation_at > now));
    let drifted = 0;
    await this.parallel(settled, async (row) => {
      const binding = toRecord(row);
      const provider = this.rotator.providerFor(binding);
      const wrong: string[] = [];
      for (const spec of binding.spec.sinks) {
        let held: string | null;
        try {
          held = await (await createSink(spec, this.deps.sinkDeps, row.name, sinkContext(row.origin, row.delivered, spec))).read();
        } catch (err) {
          this.deps.metrics.sinkErrors.labels(row.name, spec.kind).inc();
          this.deps.logger.warn({ binding: row.name, sink: describeSink(spec), err: safeError(err) }, 'cannot read a sink back to check it');
          continue;
        }
        if (held === null) wrong.push(`${describeSink(spec)} is missing`);
        else if (provider.idOf(held) !== row.token_id) wrong.push(`${describeSink(spec)} holds another token`);
      }
      if (!wrong.length) return;
      const marked = await this.deps.store.transaction(async (tx) => {
        await this.deps.leadership.fence(tx);
        const q = new BindingQueries(tx);
        const fresh = await q.byId(row.id);
        // A rotation that started meanwhile delivers to every sink anyway.
        if (!fresh || fresh.state !== 'active' || fresh.token_id !== row.token_id || (await q.openRotation(row.id))) return false;
        await q.update(row.id, { next_rotation_at: now, rotate_reason: 'drift', retry_at: null, updated_at: now });
        await new Authority(tx, this.deps.authority.clock, this.deps.authority.policy).record(CONTROLLER_PRINCIPAL, 'binding.drift', 'binding', row.name, { sinks: wrong });
        return true;
      });
      if (!marked) return;
      this.deps.metrics.sinkDrift.labels(row.name).inc();
      this.deps.logger.warn({ binding: row.name, sinks: wrong }, 'a delivered token went missing or was changed; rotating to put a valid one back');
      drifted++;
    });
    return drifted;
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
    m.rotations.remove(name, 'failure');
    m.rotations.remove(name, 'success');
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
