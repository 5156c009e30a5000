/** When to refresh a token and how to back off after a failure. Pure: the clock and randomness come in. */
export interface RefreshPolicy {
  /** Refresh when this fraction of the token's lifetime has passed (0 < at < 1). */
  at: number;
  /** Spread, as a fraction of the lifetime, added or subtracted at random so replicas and restarts do not align. */
  jitter: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export const DEFAULT_REFRESH_POLICY: RefreshPolicy = { at: 0.7, jitter: 0.05, retryInitialMs: 1_000, retryMaxMs: 60_000 };

export type Random = () => number;

export function nextRefreshAt(fetchedAt: number, expiresAt: number, policy: RefreshPolicy, random: Random = Math.random): number {
  const life = Math.max(0, expiresAt - fetchedAt);
  const offset = life * policy.at + (random() * 2 - 1) * policy.jitter * life;
  // Never before a tenth of the lifetime (no hot loop), never after 95% (time to retry).
  return fetchedAt + Math.min(life * 0.95, Math.max(life * 0.1, offset));
}

/**
 * Exponential backoff with jitter after the `attempt`-th consecutive failure (1-based). While a
 * last good token is still alive, the delay never exceeds half of what it has left, so several
 * attempts happen before it dies.
 */
export function retryDelay(attempt: number, policy: RefreshPolicy, remainingMs: number | undefined, random: Random = Math.random): number {
  const base = Math.min(policy.retryMaxMs, policy.retryInitialMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  const jittered = base / 2 + (random() * base) / 2;
  return withinRemainingLife(jittered, remainingMs, Math.min(100, policy.retryInitialMs));
}

/**
 * While the last good token is alive (`remainingMs` > 0), a retry waits at most half of what it
 * has left, and at least `floorMs`: several attempts happen before it dies. The agent's
 * refresher and the server's delivery controller both retry by this rule.
 */
export function withinRemainingLife(delayMs: number, remainingMs: number | undefined, floorMs: number): number {
  if (remainingMs === undefined || remainingMs <= 0) return delayMs;
  return Math.max(floorMs, Math.min(delayMs, remainingMs / 2));
}
