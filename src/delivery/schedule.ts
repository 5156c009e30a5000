/**
 * The one renewal schedule and the one backoff of everything that retries: binding rotations
 * (server), upstream refreshes (server and agent), sink writes. Pure: the clock's time and the
 * randomness come in. Nothing here imports another part of tokenwarden, so delivery/, sources/
 * and agent/ all import it without a cycle.
 */

export type Random = () => number;

/**
 * When a token is renewed: at `at` of its lifetime (like cert-manager's renewal time: 2/3 of the
 * lifetime), moved earlier or later at random by up to `jitter` of the lifetime, so replicas and
 * restarts do not align. One meaning of jitter everywhere: a fraction of the lifetime.
 */
export interface RenewalPolicy {
  /** Fraction of the lifetime after which the token is renewed (0 < at < 1). */
  at: number;
  /** ± this fraction of the lifetime, at random. */
  jitter: number;
}

/** The same defaults for the server's bindings and the agent's. */
export const RENEWAL_DEFAULTS: RenewalPolicy = { at: 0.66, jitter: 0.05 };

/** Whether `at` and `jitter` leave a renewal inside the lifetime; the message names what to change. */
export function renewalProblem(policy: RenewalPolicy): { field: 'at' | 'jitter'; message: string } | null {
  if (!(policy.at > 0 && policy.at < 1)) return { field: 'at', message: 'must be a fraction of the lifetime between 0 and 1, e.g. 0.66' };
  if (!(policy.jitter >= 0 && policy.at + policy.jitter < 1)) return { field: 'jitter', message: 'must keep at + jitter below the whole lifetime (1); lower the jitter or at' };
  return null;
}

/**
 * When the token issued at `issuedAt` and expiring at `expiresAt` should be renewed. Never before
 * a tenth of its lifetime (no hot loop), never after 95 % (time left to retry).
 */
export function renewalAt(issuedAt: number, expiresAt: number, policy: RenewalPolicy, random: Random = Math.random): number {
  const life = Math.max(0, expiresAt - issuedAt);
  const offset = life * policy.at + (random() * 2 - 1) * policy.jitter * life;
  return issuedAt + Math.round(Math.min(life * 0.95, Math.max(life * 0.1, offset)));
}

export interface BackoffPolicy {
  /** The delay after the first failure. */
  initialMs: number;
  /** No delay is longer than this. */
  maxMs: number;
}

/** Jitter takes up to this fraction off a delay (never adds: `maxMs` stays a maximum). */
export const BACKOFF_JITTER = 0.2;

/** A token with less than this fraction of its life left is urgent: retries come at least every `urgentMs`. */
export const URGENT_FRACTION = 0.1;

/** Default `delivery.urgentRetry`. */
export const URGENT_RETRY_MS = 10_000;

/** What is known about the token consumers hold now, to cap a retry by how urgent it is. */
export interface Urgency {
  /** Time left on the token in the sinks (≤ 0: expired); undefined when there is none or it is unknown. */
  remainingMs?: number;
  /** Its whole lifetime, to tell "under a tenth of its life left". */
  lifetimeMs?: number;
  /** The cap while urgent (`delivery.urgentRetry`). */
  urgentMs?: number;
  /**
   * While the token is alive, wait at most half of what it has left (and at least this floor), so
   * several attempts happen before it dies. Used where the token cannot be re-issued at will (an
   * upstream's); undefined: no such cap.
   */
  halfLifeFloorMs?: number;
}

/**
 * The one backoff: exponential from `initialMs` after the `attempt`-th consecutive failure
 * (1-based), capped at `maxMs`, up to 20 % shorter at random; then capped by urgency: when the
 * token consumers hold has expired or has under a tenth of its life left, at most `urgentMs`
 * (also jittered), so an upstream or a sink that comes back is used within seconds.
 */
export function backoff(attempt: number, policy: BackoffPolicy, urgency: Urgency = {}, random: Random = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  const jitter = 1 - BACKOFF_JITTER * (1 - random()); // random() 1: the full delay
  let delay = base * jitter;
  const { remainingMs, lifetimeMs, urgentMs, halfLifeFloorMs } = urgency;
  if (remainingMs !== undefined && halfLifeFloorMs !== undefined && remainingMs > 0) delay = Math.max(halfLifeFloorMs, Math.min(delay, remainingMs / 2));
  if (urgentMs !== undefined && isUrgent(remainingMs, lifetimeMs)) delay = Math.min(delay, urgentMs * jitter);
  return Math.round(delay);
}

/** Expired, or under a tenth of its lifetime left. Unknown (no token in the sinks yet): urgent too. */
export function isUrgent(remainingMs: number | undefined, lifetimeMs: number | undefined): boolean {
  if (remainingMs === undefined) return true;
  if (remainingMs <= 0) return true;
  return lifetimeMs !== undefined && lifetimeMs > 0 && remainingMs < lifetimeMs * URGENT_FRACTION;
}
