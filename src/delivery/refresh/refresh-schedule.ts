import { type Random, RENEWAL_DEFAULTS, URGENT_RETRY_MS, backoff, renewalAt } from '../schedule.js';

export type { Random } from '../schedule.js';

/** When to refresh a token and how to back off after a failure: the one schedule and backoff (delivery/schedule.ts) with the refresher's knobs. */
export interface RefreshPolicy {
  /** Refresh when this fraction of the token's lifetime has passed (0 < at < 1). */
  at: number;
  /** Spread, as a fraction of the lifetime, added or subtracted at random so replicas and restarts do not align. */
  jitter: number;
  retryInitialMs: number;
  retryMaxMs: number;
  /** While the token in the sinks has expired or has under a tenth of its life left, retries come at least this often. */
  urgentRetryMs?: number;
}

/** The server's binding defaults (renew at 0.66 ± 0.05 of the lifetime), shared with the agent. */
export const DEFAULT_REFRESH_POLICY: RefreshPolicy = { ...RENEWAL_DEFAULTS, retryInitialMs: 1_000, retryMaxMs: 60_000, urgentRetryMs: URGENT_RETRY_MS };

export function nextRefreshAt(fetchedAt: number, expiresAt: number, policy: RefreshPolicy, random: Random = Math.random): number {
  return renewalAt(fetchedAt, expiresAt, policy, random);
}

/**
 * The delay after the `attempt`-th consecutive failure (1-based): the one backoff. While a last good
 * token is still alive, the delay never exceeds half of what it has left, so several attempts
 * happen before it dies; once it is (nearly) dead, at most `urgentRetryMs`.
 */
export function retryDelay(attempt: number, policy: RefreshPolicy, remainingMs: number | undefined, random: Random = Math.random, lifetimeMs?: number): number {
  return backoff(
    attempt,
    { initialMs: policy.retryInitialMs, maxMs: policy.retryMaxMs },
    { remainingMs, lifetimeMs, urgentMs: policy.urgentRetryMs, halfLifeFloorMs: Math.min(100, policy.retryInitialMs) },
    random,
  );
}
