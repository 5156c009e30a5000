import type { Clock } from '../../clock.js';
import type { Sink } from '../sinks/sink.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../observe/metrics.js';
import { redactTokens, upstreamTokenId } from '../../token/format.js';
import { DEFAULT_REFRESH_POLICY, type Random, type RefreshPolicy, nextRefreshAt, retryDelay } from './refresh-schedule.js';
import { SecretRefError } from '../../sources/secret-ref.js';
import type { Source } from '../../sources/source.js';
import { UpstreamError } from '../../sources/upstream-http.js';

/** What is known about a source-fed binding; no secret in it, so it can be shown and persisted as is. */
export interface RefreshState {
  /** Expiry of the token now in the sinks (epoch ms). */
  expiresAt?: number;
  /** Public fingerprint (`up_…`) of the token now in the sinks, to notice a sink changed behind our back. */
  fingerprint?: string;
  fetchedAt?: number;
  nextAttemptAt: number;
  /** Consecutive failed attempts. */
  failures: number;
  lastError?: string;
  lastErrorReason?: string;
  lastErrorAt?: number;
  lastSuccessAt?: number;
  healthy: boolean;
}

/** A source may want to know whether its token reached the sinks (a minted one is revoked when it did not). */
export type RefreshableSource = Source & {
  kind?: string;
  delivered?(): Promise<void>;
  undelivered?(): Promise<void>;
};

export interface RefresherOptions {
  binding: string;
  source: RefreshableSource;
  sinks: Sink[];
  clock: Clock;
  logger: Logger;
  metrics?: Metrics;
  policy?: Partial<RefreshPolicy>;
  random?: Random;
  /** State from before a restart (the agent's state file). */
  initial?: RefreshState;
  /** Called after every attempt, to persist or publish the state. */
  onState?: (state: RefreshState) => void | Promise<void>;
  /** How often the sinks are read back between refreshes (default 1 minute; 0 never). */
  driftCheckMs?: number;
}

/**
 * Keeps one binding's sinks fed from its source: refresh at a fraction of the lifetime, retry
 * with backoff, and on failure leave the sinks alone so the last good token serves until it
 * really expires. Time comes from the clock; `runIfDue` is called by a loop or by a test.
 */
export class SourceRefresher {
  readonly binding: string;
  readonly policy: RefreshPolicy;
  private current: RefreshState;
  private inFlight: Promise<boolean> | null = null;
  private lastDriftCheck = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: RefresherOptions) {
    this.binding = options.binding;
    this.policy = { ...DEFAULT_REFRESH_POLICY, ...options.policy };
    this.current = options.initial ? { ...options.initial } : { nextAttemptAt: 0, failures: 0, healthy: false };
    options.metrics?.bindingHealthy.labels(this.binding).set(this.current.healthy ? 1 : 0);
    if (this.current.expiresAt) options.metrics?.bindingExpiry.labels(this.binding).set(this.current.expiresAt / 1000);
  }

  get state(): Readonly<RefreshState> {
    return this.current;
  }

  get sourceKind(): string {
    return this.options.source.kind ?? this.options.source.describe.split(' ')[0]!;
  }

  isDue(): boolean {
    return this.options.clock.now() >= this.current.nextAttemptAt;
  }

  /** Refreshes when the schedule says so, or at once when a sink lost its token or holds another one. */
  async runIfDue(): Promise<boolean | undefined> {
    if (this.isDue() || (await this.drifted())) return this.refresh();
    return undefined;
  }

  /**
   * Reads the sinks back (at most every `driftCheckMs`): a token file deleted by hand or a Secret
   * restored from an old backup is refilled now rather than at the next scheduled refresh. A sink
   * that cannot be read is left to the next write to report.
   */
  private async drifted(): Promise<boolean> {
    const { clock, sinks, logger, metrics } = this.options;
    const every = this.options.driftCheckMs ?? 60_000;
    const now = clock.now();
    // Before the first delivery the schedule already says "now".
    if (!every || this.current.lastSuccessAt === undefined || now - this.lastDriftCheck < every) return false;
    this.lastDriftCheck = now;
    for (const sink of sinks) {
      const held = await sink.read().catch(() => undefined);
      if (held === undefined) continue;
      // A state file from before fingerprints were kept can only tell a missing token.
      if (held !== null && (this.current.fingerprint === undefined || upstreamTokenId(held) === this.current.fingerprint)) continue;
      logger.warn({ binding: this.binding, sink: sink.describe }, held === null ? 'a sink lost its token; refilling it now' : 'a sink holds another token; refilling it now');
      metrics?.sinkDrift.labels(this.binding).inc();
      return true;
    }
    return false;
  }

  /** One attempt now. Returns whether a fresh token reached every sink. Concurrent calls share the attempt. */
  refresh(): Promise<boolean> {
    this.inFlight ??= this.attempt().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  /** Persisting the state must not turn a delivered token into a failure, nor crash the loop. */
  private async publish(): Promise<void> {
    try {
      await this.options.onState?.(this.current);
    } catch (err) {
      this.options.logger.error({ binding: this.binding }, `cannot record the refresh state: ${safeMessage(err)}`);
    }
  }

  private async attempt(): Promise<boolean> {
    const { clock, logger, metrics, source, sinks } = this.options;
    const started = clock.now();
    let stage = 'fetch';
    try {
      const fetched = await source.fetch();
      stage = 'deliver';
      for (const sink of sinks) {
        try {
          await sink.write(fetched.token);
        } catch (err) {
          metrics?.sinkErrors.labels(this.binding, sink.describe.split(':')[0]!).inc();
          await source.undelivered?.().catch(() => undefined);
          throw new Error(`writing to ${sink.describe} failed: ${safeMessage(err)}`);
        }
      }
      await source.delivered?.();
      const now = clock.now();
      this.current = {
        expiresAt: fetched.expiresAt,
        fingerprint: upstreamTokenId(fetched.token),
        fetchedAt: now,
        nextAttemptAt: nextRefreshAt(now, fetched.expiresAt, this.policy, this.options.random),
        failures: 0,
        lastSuccessAt: now,
        healthy: true,
      };
      metrics?.bindingExpiry.labels(this.binding).set(fetched.expiresAt / 1000);
      metrics?.bindingLastSuccess.labels(this.binding).set(now / 1000);
      metrics?.bindingHealthy.labels(this.binding).set(1);
      logger.info(
        { binding: this.binding, source: source.describe, expiresAt: new Date(fetched.expiresAt).toISOString(), nextRefreshAt: new Date(this.current.nextAttemptAt).toISOString() },
        'refreshed token from upstream',
      );
      await this.publish();
      return true;
    } catch (err) {
      const now = clock.now();
      const failures = this.current.failures + 1;
      const remaining = this.current.expiresAt !== undefined ? this.current.expiresAt - now : undefined;
      const message = safeMessage(err);
      const own = (err as { reason?: unknown }).reason;
      const reason = err instanceof SecretRefError ? 'config' : typeof own === 'string' ? own : stage === 'deliver' ? 'sink' : 'error';
      this.current = {
        ...this.current,
        failures,
        lastError: message,
        lastErrorReason: reason,
        lastErrorAt: now,
        nextAttemptAt: now + retryDelay(failures, this.policy, remaining, this.options.random, lifetimeOf(this.current)),
        healthy: false,
      };
      metrics?.refreshFailures.labels(this.binding, this.sourceKind).inc();
      metrics?.bindingHealthy.labels(this.binding).set(0);
      const alive = remaining !== undefined && remaining > 0;
      logger[alive ? 'warn' : 'error'](
        {
          binding: this.binding,
          source: source.describe,
          reason,
          failures,
          tookMs: now - started,
          retryAt: new Date(this.current.nextAttemptAt).toISOString(),
          lastGoodExpiresAt: this.current.expiresAt ? new Date(this.current.expiresAt).toISOString() : null,
        },
        `upstream refresh failed: ${message}; ${alive ? 'the last good token stays in the sinks until it expires' : 'no valid token is being served'}`,
      );
      await this.publish();
      return false;
    }
  }
}

/** The whole life of the token in the sinks, when known: retries turn urgent in its last tenth. */
function lifetimeOf(s: RefreshState): number | undefined {
  return s.expiresAt !== undefined && s.fetchedAt !== undefined ? s.expiresAt - s.fetchedAt : undefined;
}

/**
 * Messages of our own errors are written to be shown; anything else (a library's error) is cut
 * to its first line and stripped of token-shaped strings, as a last line of defence.
 */
export function safeMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const ours = err instanceof UpstreamError || err instanceof SecretRefError || (err as Error)?.name === 'SourceGoneError';
  const cut = ours ? text : text.split('\n')[0]!.slice(0, 300);
  return redactTokens(cut).replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, '[REDACTED JWT]');
}
