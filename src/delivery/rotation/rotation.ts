import { randomUUID } from 'node:crypto';
import type { Authority } from '../../authority/authority.js';
import { type Clock, iso } from '../../clock.js';
import { Problem } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../observe/metrics.js';
import { BindingQueries, type BindingTable, type RotationTable } from '../../store/bindings.js';
import type { Store } from '../../store/store.js';
import { redactTokens } from '../../token/format.js';
import type { LastUseRecorder } from '../../verify/last-use.js';
import { crashPoint } from './crash-points.js';
import { MintProvider, type SourceProviderFactory, type TokenProvider } from '../token-provider.js';
import type { SealedBox } from '../../token/sealed.js';
import { type DeliveredSink, type SinkDeps, createSink, describeSink, restartConsumers, sinkContext } from '../sinks/index.js';
import { URGENT_RETRY_MS, backoff } from '../schedule.js';
import { type SinkState, parseSinkState } from '../bindings/health.js';
import { type BindingRecord, nextRotationAt, toRecord } from '../bindings/spec.js';

/** Thrown inside a transaction when this process no longer leads: the transaction rolls back. */
export class LostLeadership extends Error {
  constructor() {
    super('this process is no longer the delivery leader');
  }
}

export interface RotationDeps {
  store: Store;
  authority: Authority;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  sealed: SealedBox;
  sinkDeps: SinkDeps;
  /** This process's record of token use (the verifier's); the store's last_used_at covers other replicas. */
  lastUse?: Pick<LastUseRecorder, 'lastSeen'>;
  sourceProvider?: SourceProviderFactory;
  /** Refuses (throws LostLeadership) inside a transaction once another process leads. */
  fence: (tx: Store) => Promise<void>;
  /** How often a waiting step (confirm, grace) is looked at again. */
  pollMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** While the token in the sinks has expired or has under a tenth of its life left, retries come at least this often (`delivery.urgentRetry`). */
  urgentRetryMs?: number;
  fetch?: typeof fetch;
  random?: () => number;
  /** Webhook notices (observe/notify.ts), when configured: told of every failed rotation. */
  notifier?: {
    rotationFailed(binding: string, reason: string): Promise<unknown>;
    rotationUnconfirmed?(binding: string, seq: number, outcome: string, reason: string): Promise<unknown>;
  };
}

/**
 * Both outcomes of a binding's rotations counter exist from the start at 0, so the shipped
 * `increase(tokenwarden_rotations_total{outcome="failure"}[…]) > 0` alert sees the first failure.
 */
export function initRotationSeries(metrics: Metrics, binding: string): void {
  for (const outcome of ROTATION_OUTCOMES) metrics.rotations.inc({ binding, outcome }, 0);
}

/**
 * How a rotation ends, and the `outcome` label of tokenwarden_rotations_total: `failure` counts
 * failed attempts; the others count finished rotations. A rotation whose old token expired (or was
 * revoked outside it) before the new one was confirmed protected nothing: consumers may have been
 * refused meanwhile, so it is not a success.
 */
export const ROTATION_OUTCOMES = ['success', 'failure', 'expired-before-confirm', 'revoked-before-confirm'] as const;
export type RotationOutcome = Exclude<(typeof ROTATION_OUTCOMES)[number], 'failure'>;

/** A message fit for the API and logs: no token, bounded length. */
export function safeError(err: unknown): string {
  const text = err instanceof Problem ? err.detail : err instanceof Error ? err.message : String(err);
  return redactTokens(text).slice(0, 500);
}

/**
 * The rotation state machine: mint → deliver → (restart) → confirm → grace → revoke → done.
 * Every step's outcome is committed before the next step begins, so a process killed at any
 * point resumes from the last committed step: the new token survives (sealed in the rotation
 * row until confirmed), and the old one is revoked exactly when the last step commits.
 * A failing step keeps the old token valid and is retried with exponential backoff and jitter.
 */
export class Rotator {
  private readonly mint: MintProvider;

  constructor(private readonly deps: RotationDeps) {
    this.mint = new MintProvider(deps.authority);
  }

  providerFor(binding: BindingRecord): TokenProvider {
    if (!binding.spec.source) return this.mint;
    if (!this.deps.sourceProvider) throw new Problem('unavailable', `source kind "${binding.spec.source.kind}" is not available in this build`);
    return this.deps.sourceProvider(binding);
  }

  private q(s: Store = this.deps.store): BindingQueries {
    return new BindingQueries(s);
  }

  private now(): number {
    return this.deps.clock.now();
  }

  /** Starts a rotation of a due binding (mints and records the new token in one transaction), then drives it. */
  async begin(row: BindingTable): Promise<void> {
    const binding = toRecord(row);
    initRotationSeries(this.deps.metrics, binding.name);
    let rotationId: string | undefined;
    try {
      crashPoint('mint');
      const provider = this.providerFor(binding);
      const reason = row.token_id === null ? 'initial' : (row.rotate_reason ?? 'scheduled');
      await provider.issue(binding, row.token_id, async (issued, tx) => {
        await this.deps.fence(tx);
        const q = this.q(tx);
        const now = this.now();
        const id = randomUUID();
        // The binding row is claimed in the same transaction: a removal or a second leader cannot interleave.
        const claimed = await q.updateUnlessRemoving(binding.id, {
          state: row.token_id === null ? 'pending' : 'rotating',
          rotate_reason: null,
          next_rotation_at: nextRotationAt(now, issued.expiresAt, binding.policy, this.deps.random),
          rotation_count: row.rotation_count + 1,
          updated_at: now,
        });
        if (!claimed) throw new Problem('conflict', `binding "${binding.name}" is being removed`);
        if (await q.openRotation(binding.id)) throw new Problem('conflict', `binding "${binding.name}" already has a rotation in flight`);
        await q.insertRotation({
          id,
          binding_id: binding.id,
          seq: row.rotation_count + 1,
          reason,
          step: 'deliver',
          old_token_id: row.token_id,
          old_expires_at: row.token_id === null ? null : row.token_expires_at,
          new_token_id: issued.tokenId,
          new_expires_at: issued.expiresAt,
          sealed: this.deps.sealed.seal(issued.plaintext, id),
          delivered_at: null,
          confirmed_at: null,
          grace_until: null,
          attempts: 0,
          retry_at: now,
          last_error: null,
          note: null,
          started_at: now,
          updated_at: now,
          finished_at: null,
        });
        rotationId = id;
      });
    } catch (err) {
      if (err instanceof LostLeadership) return;
      await this.bindingFailed(binding, err);
      return;
    }
    if (rotationId) await this.advance(rotationId);
  }

  /** Drives one rotation as far as it can go now; stops at a step that must wait, or on failure. */
  async advance(rotationId: string): Promise<void> {
    let binding: BindingRecord | undefined;
    for (let guard = 0; guard < 10; guard++) {
      const rot = await this.q().rotation(rotationId);
      if (!rot || rot.finished_at !== null) return;
      if (!binding) {
        const row = await this.q().byId(rot.binding_id);
        if (!row || row.state === 'removing') return; // removal revokes every token of the binding
        binding = toRecord(row);
      }
      let next: 'continue' | 'wait';
      try {
        next = await this.step(binding, rot);
      } catch (err) {
        if (err instanceof LostLeadership) return;
        await this.stepFailed(binding, rot, err);
        return;
      }
      if (next === 'wait') return;
    }
  }

  private async step(binding: BindingRecord, rot: RotationTable): Promise<'continue' | 'wait'> {
    switch (rot.step) {
      case 'deliver':
        return this.deliver(binding, rot);
      case 'restart':
        await restartConsumers(binding.spec.restart ?? [], this.deps.sinkDeps, binding.name, rot.new_token_id ?? rot.id);
        await this.commit(rot, { step: 'confirm' });
        return 'continue';
      case 'confirm':
        return this.confirm(binding, rot);
      case 'grace':
        crashPoint('grace');
        if (this.now() < (rot.grace_until ?? 0)) {
          await this.q().updateRotation(rot.id, { retry_at: rot.grace_until!, updated_at: this.now() });
          return 'wait';
        }
        await this.commit(rot, { step: 'revoke' });
        return 'continue';
      case 'revoke':
        await this.finish(binding, rot);
        return 'wait';
      default:
        return 'wait';
    }
  }

  private async deliver(binding: BindingRecord, rot: RotationTable): Promise<'continue' | 'wait'> {
    crashPoint('deliver');
    const plaintext = rot.sealed ? this.deps.sealed.open(rot.sealed, rot.id) : null;
    if (plaintext === null || rot.new_expires_at <= this.now()) {
      // The key changed or the token outlived a long outage: drop it (never delivered) and start over.
      await this.abandon(binding, rot, plaintext === null ? 'the sealed token cannot be opened (was the delivery key changed?)' : 'the new token expired before it could be delivered');
      return 'wait';
    }
    const errors: string[] = [];
    const states: SinkState[] = [];
    const previous = new Map(parseSinkState(binding.row.sink_state).map((st) => [st.sink, st]));
    let written = 0;
    const delivered = JSON.parse(binding.row.delivered) as DeliveredSink[];
    // The record of each sink as it now is: the spec, and what was written (a file's SHA-256).
    const kept: DeliveredSink[] = binding.spec.sinks.map((s) => ({ ...s }));
    for (const [i, spec] of binding.spec.sinks.entries()) {
      try {
        const sink = await createSink(spec, this.deps.sinkDeps, binding.name, sinkContext(binding.row.origin, delivered, spec));
        const { fingerprint } = await sink.write(plaintext);
        if (fingerprint) kept[i].sha256 = fingerprint;
        written++;
        states.push({ sink: describeSink(spec), status: 'ok', tokenId: rot.new_token_id ?? this.providerFor(binding).idOf(plaintext), detail: null, at: this.now() });
        if (written === 1 && binding.spec.sinks.length > 1) crashPoint('deliver-partial');
      } catch (err) {
        this.deps.metrics.sinkErrors.labels(binding.name, spec.kind).inc();
        errors.push(`sinks.${i} (${describeSink(spec)}): ${safeError(err)}`);
        // It still holds what it held before (the old token, or nothing): say so, with why the write failed.
        const before = previous.get(describeSink(spec));
        states.push({ sink: describeSink(spec), status: 'write-failed', tokenId: before?.tokenId ?? null, detail: safeError(err), at: this.now() });
      }
    }
    if (errors.length) {
      // Which sink fails and which hold the new token, for `binding show` on every replica.
      await this.q().update(binding.id, { sink_state: JSON.stringify(states) });
      throw new Error(`delivery failed: ${errors.join('; ')}`);
    }
    // Sinks dropped from the spec since the last delivery hold a token that is about to be revoked: clean them up.
    const current = new Set(binding.spec.sinks.map(describeSink));
    for (const old of delivered) {
      if (current.has(describeSink(old))) continue;
      try {
        const outcome = await (await createSink(old, this.deps.sinkDeps, binding.name, sinkContext(binding.row.origin, delivered, old))).remove();
        if (outcome && !outcome.removed) {
          this.deps.logger.warn({ binding: binding.name, sink: describeSink(old) }, `a sink dropped from the binding was left in place: ${outcome.reason ?? 'not ours'}`);
        }
      } catch (err) {
        this.deps.metrics.sinkErrors.labels(binding.name, old.kind).inc();
        kept.push(old);
        this.deps.logger.warn({ binding: binding.name, sink: describeSink(old), err: safeError(err) }, 'could not remove a sink dropped from the binding; will retry');
      }
    }
    const now = this.now();
    await this.deps.store.transaction(async (tx) => {
      await this.deps.fence(tx);
      await this.q(tx).updateRotation(rot.id, {
        step: binding.spec.restart?.length ? 'restart' : 'confirm',
        delivered_at: now,
        attempts: 0,
        retry_at: now,
        last_error: null,
        updated_at: now,
      });
      await this.q(tx).update(binding.id, {
        token_id: rot.new_token_id,
        token_expires_at: rot.new_expires_at,
        delivered: JSON.stringify(kept),
        sink_state: JSON.stringify(states),
        last_error: null,
        updated_at: now,
      });
      if (delivered.some((d) => !current.has(describeSink(d)))) await this.q(tx).claimSinks(binding.id, kept.map(describeSink));
    });
    this.deps.metrics.bindingExpiry.labels(binding.name).set(rot.new_expires_at / 1000);
    this.deps.logger.info({ binding: binding.name, tokenId: rot.new_token_id, seq: rot.seq }, 'token delivered');
    return 'continue';
  }

  private async confirm(binding: BindingRecord, rot: RotationTable): Promise<'continue' | 'wait'> {
    crashPoint('confirm');
    const now = this.now();
    const verdict = await this.confirmation(binding, rot, now);
    if (verdict.ok) {
      // Grace keeps a revocable old token alive a little longer. An upstream's token (a source
      // binding, not verifiable here) cannot be revoked, so waiting would only hold back the next refresh.
      const graceUntil = rot.old_token_id && this.providerFor(binding).verifiable ? now + binding.policy.graceMs : now;
      const patch = { confirmed_at: now, grace_until: graceUntil, sealed: null, note: verdict.note ?? rot.note, outcome: verdict.outcome ?? 'success' };
      // Without a grace period, confirming and revoking commit together (one transaction fewer per rotation).
      if (graceUntil <= now || verdict.outcome) {
        await this.finish(binding, { ...rot, ...patch }, patch);
        return 'wait';
      }
      await this.commit(rot, { step: 'grace', ...patch });
      return 'continue';
    }
    const overdue = now - (rot.delivered_at ?? now) > binding.policy.confirmTimeoutMs;
    const message = overdue ? `not confirmed after ${Math.round(binding.policy.confirmTimeoutMs / 1000)}s: ${verdict.why}; the old token stays valid` : null;
    await this.deps.store.transaction(async (tx) => {
      await this.q(tx).updateRotation(rot.id, { retry_at: now + this.deps.pollMs, updated_at: now, ...(message ? { last_error: message } : {}) });
      if (message && rot.last_error !== message) {
        await this.q(tx).update(binding.id, { state: 'failing', last_error: message, updated_at: now });
      }
    });
    if (message && rot.last_error === null) {
      await this.failedMetrics(binding.name, message);
      this.deps.logger.warn({ binding: binding.name, seq: rot.seq }, message);
    }
    return 'wait';
  }

  /** Whether the old token may go: the new one works (seen in use, or a probe accepts it), or there is nothing to protect. */
  private async confirmation(
    binding: BindingRecord,
    rot: RotationTable,
    now: number,
  ): Promise<{ ok: true; note?: string; outcome?: RotationOutcome } | { ok: false; why: string }> {
    if (!rot.old_token_id) return { ok: true };
    // Nothing left to protect: the rotation finishes, but it did not keep consumers served.
    const old = await this.q().tokenUse(rot.old_token_id); // undefined for an upstream's token
    if (old && old.revoked_at !== null) {
      return { ok: true, outcome: 'revoked-before-confirm', note: `the old token was revoked at ${iso(old.revoked_at)}, before the new one was confirmed` };
    }
    const oldExpiresAt = old?.expires_at ?? rot.old_expires_at ?? null;
    if (oldExpiresAt !== null && oldExpiresAt <= now) {
      return { ok: true, outcome: 'expired-before-confirm', note: `the old token expired at ${iso(oldExpiresAt)}, before the new one was confirmed` };
    }
    const confirm = binding.policy.confirm;
    if (confirm.mode === 'none') return { ok: true };
    if (!old && this.providerFor(binding).verifiable) return { ok: true, note: 'the old token is gone' };
    if (confirm.mode === 'probe') {
      const plaintext = rot.sealed ? this.deps.sealed.open(rot.sealed, rot.id) : null;
      if (plaintext === null) return { ok: false, why: 'the sealed token cannot be opened for the probe' };
      try {
        const res = await (this.deps.fetch ?? fetch)(confirm.url, {
          headers: confirm.header ? { [confirm.header]: plaintext } : { authorization: `Bearer ${plaintext}` },
          signal: AbortSignal.timeout(5000),
        });
        await res.body?.cancel();
        return res.ok ? { ok: true } : { ok: false, why: `the probe ${confirm.url} answered ${res.status} with the new token` };
      } catch (err) {
        return { ok: false, why: `the probe ${confirm.url} failed: ${safeError((err as { cause?: unknown }).cause ?? err)}` };
      }
    }
    if (!this.providerFor(binding).verifiable) return { ok: true, note: 'usage cannot be observed for an upstream token' };
    const newUse = await this.q().tokenUse(rot.new_token_id!);
    const newSeen = Math.max(this.deps.lastUse?.lastSeen(rot.new_token_id!) ?? 0, newUse?.last_used_at ?? 0);
    const oldSeen = Math.max(this.deps.lastUse?.lastSeen(rot.old_token_id) ?? 0, old?.last_used_at ?? 0);
    if (newSeen < (rot.delivered_at ?? Number.POSITIVE_INFINITY)) return { ok: false, why: 'the new token has not been seen in use yet' };
    if (oldSeen > now - binding.policy.quietMs) return { ok: false, why: `the old token was still used ${Math.round((now - oldSeen) / 1000)}s ago` };
    return { ok: true };
  }

  /** The last step: the old token is revoked and the rotation is finished in one transaction. */
  private async finish(binding: BindingRecord, rot: RotationTable, also: Partial<RotationTable> = {}): Promise<void> {
    crashPoint('revoke');
    const now = this.now();
    const outcome = ((also.outcome ?? rot.outcome ?? 'success') as RotationOutcome);
    const provider = this.providerFor(binding);
    await this.deps.store.transaction(async (tx) => {
      await this.deps.fence(tx);
      if (rot.old_token_id) await provider.retire(tx, rot.old_token_id, `rotated: replaced by ${rot.new_token_id ?? 'an upstream token'} (binding ${binding.name})`);
      await this.q(tx).updateRotation(rot.id, { outcome, ...also, step: 'done', finished_at: now, sealed: null, retry_at: now, updated_at: now, last_error: null });
      await this.q(tx).update(binding.id, { state: 'active', last_success_at: now, last_error: null, failures: 0, retry_at: null, updated_at: now });
    });
    if (rot.old_token_id) this.deps.authority.events.emit('token-revoked', rot.old_token_id);
    crashPoint('done');
    const m = this.deps.metrics;
    m.rotations.labels(binding.name, outcome).inc();
    m.bindingLastSuccess.labels(binding.name).set(now / 1000);
    m.bindingHealthy.labels(binding.name).set(1);
    if (outcome === 'success') {
      this.deps.logger.info({ binding: binding.name, seq: rot.seq, revoked: rot.old_token_id, current: rot.new_token_id }, 'rotation finished');
      return;
    }
    const note = (also.note ?? rot.note) || outcome;
    this.deps.logger.warn({ binding: binding.name, seq: rot.seq, outcome, current: rot.new_token_id }, `rotation finished ${outcome}: ${note}; consumers may have been refused meanwhile`);
    try {
      await this.deps.notifier?.rotationUnconfirmed?.(binding.name, rot.seq, outcome, note);
    } catch (err) {
      this.deps.logger.warn({ binding: binding.name, err: safeError(err) }, 'could not queue the unconfirmed-rotation notice');
    }
  }

  /**
   * The token an unfinished rotation delivered no longer verifies (revoked by hand, its identity
   * changed): waiting for its confirmation would wait for nothing. The rotation is dropped and a
   * fresh one asked for at once, its reason saying why.
   */
  async supersede(rotationId: string, why: string): Promise<boolean> {
    const rot = await this.q().rotation(rotationId);
    const row = rot && rot.finished_at === null ? await this.q().byId(rot.binding_id) : undefined;
    if (!rot || !row || row.state === 'removing') return false;
    await this.abandon(toRecord(row), rot, why, why);
    return true;
  }

  /** Drops an undeliverable new token (the old one stays) and asks for a fresh rotation. */
  private async abandon(binding: BindingRecord, rot: RotationTable, why: string, reason = 'retry'): Promise<void> {
    const now = this.now();
    const provider = this.providerFor(binding);
    await this.deps.store.transaction(async (tx) => {
      await this.deps.fence(tx);
      if (rot.new_token_id) await provider.retire(tx, rot.new_token_id, `abandoned: ${why}`);
      await this.q(tx).updateRotation(rot.id, { step: 'abandoned', finished_at: now, sealed: null, note: why, updated_at: now });
      await this.q(tx).update(binding.id, { next_rotation_at: now, rotate_reason: reason, last_error: reason === 'retry' ? why : null, updated_at: now });
    });
    if (rot.new_token_id) this.deps.authority.events.emit('token-revoked', rot.new_token_id);
    this.deps.logger.warn({ binding: binding.name, seq: rot.seq }, `rotation abandoned: ${why}`);
  }

  private async commit(rot: RotationTable, patch: Partial<RotationTable>): Promise<void> {
    const now = this.now();
    await this.deps.store.transaction(async (tx) => {
      await this.deps.fence(tx);
      await this.q(tx).updateRotation(rot.id, { ...patch, attempts: 0, retry_at: now, updated_at: now });
    });
  }

  /** The one backoff (schedule.ts) with this controller's knobs. */
  backoff(attempt: number): number {
    return backoff(attempt, { initialMs: this.deps.retryBaseMs, maxMs: this.deps.retryMaxMs }, {}, this.deps.random);
  }

  /**
   * The retry delay of a failing binding: the one backoff, capped by urgency — once the token in
   * the sinks has expired or has under a tenth of its life left, at most `urgentRetryMs`, so a
   * sink or an upstream that comes back is used within seconds. An upstream's token cannot be
   * re-issued at will, so for a source binding the retry also comes at most at half of what the
   * last good token has left (the agent's rule, the same function).
   */
  retryDelay(binding: BindingRecord, attempt: number, now: number): number {
    const expiresAt = binding.row.token_expires_at;
    return backoff(
      attempt,
      { initialMs: this.deps.retryBaseMs, maxMs: this.deps.retryMaxMs },
      {
        remainingMs: expiresAt === null ? undefined : expiresAt - now,
        lifetimeMs: binding.lifetimeMs || undefined,
        urgentMs: this.deps.urgentRetryMs ?? URGENT_RETRY_MS,
        ...(binding.spec.source ? { halfLifeFloorMs: Math.min(100, this.deps.retryBaseMs) } : {}),
      },
      this.deps.random,
    );
  }

  private async stepFailed(binding: BindingRecord, rot: RotationTable, err: unknown): Promise<void> {
    const now = this.now();
    const message = `${rot.step}: ${safeError(err)}`;
    const attempts = rot.attempts + 1;
    await this.deps.store.transaction(async (tx) => {
      await this.q(tx).updateRotation(rot.id, { attempts, retry_at: now + this.retryDelay(binding, attempts, now), last_error: message, updated_at: now });
      await this.q(tx).update(binding.id, { state: 'failing', last_error: message, failures: binding.row.failures + 1, updated_at: now });
    });
    await this.failedMetrics(binding.name, message);
    this.deps.logger.warn({ binding: binding.name, seq: rot.seq, step: rot.step, attempts }, `rotation step failed, will retry: ${message}`);
  }

  /**
   * A rotation could not even start (the mint was refused, the source is down): retry the binding
   * later. The error names where the token comes from ("mint: …", "http-login: …"). A source that
   * is gone (its Secret deleted: the user may have been offboarded) puts the binding in state
   * "gone"; the last good token stays in the sinks until it expires.
   */
  private async bindingFailed(binding: BindingRecord, err: unknown): Promise<void> {
    const now = this.now();
    const failures = binding.row.failures + 1;
    const message = `${binding.spec.source?.kind ?? 'mint'}: ${safeError(err)}`;
    const gone = (err as { reason?: unknown }).reason === 'gone';
    await this.q().update(binding.id, {
      state: binding.row.state === 'removing' ? 'removing' : gone ? 'gone' : 'failing',
      last_error: message,
      failures,
      retry_at: now + this.retryDelay(binding, failures, now),
      updated_at: now,
    });
    await this.failedMetrics(binding.name, message);
    this.deps.logger.warn({ binding: binding.name, failures, ...(gone ? { reason: 'gone' } : {}) }, `rotation could not start, will retry: ${message}`);
  }

  /** Counts the failure, marks the binding unhealthy, and tells the webhook (never a secret: `reason` is already safe). */
  private async failedMetrics(name: string, reason: string): Promise<void> {
    this.deps.metrics.rotations.labels(name, 'failure').inc();
    this.deps.metrics.bindingHealthy.labels(name).set(0);
    try {
      await this.deps.notifier?.rotationFailed(name, reason);
    } catch (err) {
      // A notice that cannot be queued must not hold up the controller; the notifier's own check reports failures again.
      this.deps.logger.warn({ binding: name, err: safeError(err) }, 'could not queue the rotation-failure notice');
    }
  }
}
