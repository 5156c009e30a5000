import type { Clock } from '../clock.js';
import type { ResolvedConfig } from '../config/server-config.js';
import type { Store } from '../store/store.js';
import { type ParseFailure, isSameToken, parseToken, peekId, secretMatches } from '../token/format.js';
import type { RequestOrigin } from './request-origin.js';
import { LastUseRecorder, type LastUseSink } from './last-use.js';
import { FailureLimiter } from './failure-limiter.js';

export interface Identity {
  tokenId: string;
  tokenName: string;
  actorId: string;
  actorName: string;
  actorKind: 'user' | 'service';
  /** The token's scopes that its identity still holds. */
  scopes: readonly string[];
  issuedAt: number;
  expiresAt: number;
}

type ParsedOk = Extract<ReturnType<typeof parseToken>, { ok: true }>;

/** A token found valid: its id, checksum and stored hash (never its secret), to recognise it again. */
export interface Vouch {
  id: string;
  checksum: string;
  hash: string;
}

export type FailureReason = 'missing' | 'malformed' | 'unknown' | 'expired' | 'revoked' | 'disabled' | 'rate_limited';

/** Every result a check can end in: the values of the `result` label of tokenwarden_verifications_total. */
export const VERIFY_RESULTS = [
  'ok', 'missing', 'malformed', 'unknown', 'expired', 'revoked', 'disabled', 'insufficient_scope', 'rate_limited',
] as const satisfies readonly (FailureReason | 'ok' | 'insufficient_scope')[];
export type VerifyResult = (typeof VERIFY_RESULTS)[number];

export type Verification =
  /** `status: 200` lets the verdict be the decision to allow as well (decision.ts), with nothing built per request. */
  | { ok: true; status: 200; identity: Identity }
  | { ok: false; reason: FailureReason; detail: string; parseFailure?: ParseFailure; /** rate_limited: whole seconds left in the window. */ retryAfter?: number };

export interface VerifierOptions {
  cacheTtlMs: number;
  negativeTtlMs: number;
  cacheSize: number;
  failureLimit: number;
  failureWindowMs: number;
  /** The failure counts to share (FailureLimiter.table): an auth thread's verifier counts into the main thread's. */
  failureTable?: SharedArrayBuffer;
}

/** The verifier's settings as the configuration file states them. */
export function verifierOptions(config: Pick<ResolvedConfig, 'durations' | 'verify'>): VerifierOptions {
  return {
    cacheTtlMs: config.durations.cacheTtlMs,
    negativeTtlMs: config.durations.negativeTtlMs,
    cacheSize: config.verify.cacheSize,
    failureLimit: config.verify.failureLimit,
    failureWindowMs: config.durations.failureWindowMs,
  };
}

interface Positive {
  hash: string;
  checksum: string;
  identity: Identity;
  /** The answer itself, built once per store hit and handed out on every cache hit. */
  verdict: Verification;
  until: number;
}

/**
 * The hot path: positive cache → failure limit → parse (no I/O) → negative cache → store → decision.
 * A token verified moments ago is answered whatever the failure count of its address (the limit
 * throttles failures, never good clients); anything else from a limited address is refused
 * before it is parsed or looked up.
 * Negative entries remember ids that are unknown, revoked or expired, so a flood of bad
 * tokens never reaches the store.
 */
export class Verifier {
  private readonly positive = new Map<string, Positive>();
  private readonly negative = new Map<string, { reason: FailureReason; until: number }>();
  /**
   * Tokens this verifier has found valid, kept past the positive cache's TTL and grant changes
   * (dropped on revocation): from a limited address such a token may still ask the store, so a
   * good client is not locked out when its cache entry lapses. A bad token never matches one.
   */
  private readonly vouched = new Map<string, { checksum: string; hash: string }>();
  private readonly vouchListeners: ((v: Vouch) => void)[] = [];
  /**
   * Each identity's effective scopes, read once on first need and kept until the grant-change
   * fan-out (authority events, the ChangeWatch poll, PostgreSQL NOTIFY, the auth thread's messages)
   * calls `invalidateActor`. Whether an identity is disabled is read with its token on every cold check.
   */
  private readonly held = new Map<string, HeldScopes>();
  /** Bumped by every invalidation, so that scopes read before one are not kept after it. */
  private heldEpoch = 0;
  readonly limiter: FailureLimiter;
  readonly lastUse: LastUseRecorder;
  /** Called on every decision, for metrics; kept synchronous and cheap. */
  onResult: (result: VerifyResult) => void = () => undefined;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly options: VerifierOptions,
    /** Where last-use batches go; the store unless said (an auth thread hands them to the main thread). */
    lastUseSink: LastUseSink = store,
  ) {
    this.limiter = new FailureLimiter(clock, options.failureLimit, options.failureWindowMs, options.failureTable);
    this.lastUse = new LastUseRecorder(lastUseSink);
  }

  /**
   * The whole check when it needs no I/O: rate limit, parse, positive and negative caches.
   * Synchronous so that the common case (a cached token) costs no promise and no allocation
   * beyond what the caller builds. `undefined` means the store must be asked (see `verify`).
   */
  verifyCached(bearer: string | undefined, source: RequestOrigin): Verification | undefined {
    const r = this.check(bearer, source);
    return 'secret' in r ? undefined : r;
  }

  async verify(bearer: string | undefined, source: RequestOrigin): Promise<Verification> {
    const r = this.check(bearer, source);
    return 'secret' in r ? this.verifyFromStore(r, source) : r;
  }

  /** The verdict when no I/O is needed, else the parsed token for the store to look up. */
  private check(bearer: string | undefined, source: RequestOrigin): Verification | ParsedOk {
    const key = source.ip ?? '';
    const now = this.clock.now();
    // The common case, a token verified moments ago, is decided without parsing it again.
    const seenId = peekId(bearer);
    const seen = seenId === undefined ? undefined : this.positive.get(seenId);
    if (seen !== undefined && seen.until > now && seen.identity.expiresAt > now && isSameToken(bearer!, seen)) {
      this.lastUse.note(seenId!, now, source);
      this.onResult('ok');
      return seen.verdict;
    }
    const blockedMs = this.limiter.blockedFor(key);
    if (blockedMs > 0 && !this.isVouched(seenId, bearer)) {
      this.onResult('rate_limited');
      return rateLimited(blockedMs);
    }
    const parsed = parseToken(bearer);
    if (!parsed.ok) {
      if (parsed.reason === 'empty') return this.refuse('missing');
      this.limiter.fail(key);
      this.onResult('malformed');
      return MALFORMED[parsed.reason];
    }
    const cached = this.positive.get(parsed.id);
    if (cached !== undefined && cached.until > now) {
      // Not taken by the fast path above: another secret under a known id, or the token expired since.
      if (!secretMatches(parsed.secret, cached.hash)) return this.failed(key, 'unknown');
      this.positive.delete(parsed.id);
      return this.failed(key, 'expired');
    }
    const negative = this.negative.get(parsed.id);
    if (negative !== undefined && negative.until > now) return this.failed(key, negative.reason);
    return parsed;
  }

  /** The store hit, after `check` found nothing: the token parses and is in no cache. */
  private async verifyFromStore(parsed: ParsedOk, source: RequestOrigin): Promise<Verification> {
    const key = source.ip ?? '';
    const now = this.clock.now();
    const found = await this.resolve(parsed, now);
    if (!('identity' in found)) {
      // Unknown ids, revocation and expiry are final, so they may be remembered as long as the cache lives.
      if (found.reason !== 'disabled' && !found.wrongSecret) this.remember(parsed.id, found.reason, now + this.options.negativeTtlMs);
      return this.failed(key, found.reason);
    }
    const { identity, hash } = found;
    const verdict: Verification = Object.freeze({ ok: true as const, status: 200 as const, identity });
    const until = Math.min(now + this.options.cacheTtlMs, identity.expiresAt);
    if (until > now) this.cachePositive(parsed.id, { hash, checksum: parsed.checksum, identity, verdict, until });
    this.lastUse.note(parsed.id, now, source);
    this.onResult('ok');
    return verdict;
  }

  /**
   * The same decision without side effects (no cache, no last use, no failure count, no metric):
   * for introspection, which asks about a token rather than uses it.
   */
  async inspect(bearer: string): Promise<Verification> {
    return (await this.trace(bearer)).verdict;
  }

  /**
   * How a check of `bearer` goes, step by step, for `doctor` (which explains this trace instead of
   * repeating the rules): the same parse and store rules as verify(), without caches, the failure
   * limit, counters or last use. `tokenId` is set once the token parses; `wrongSecret` when the id
   * exists but the secret is not its own.
   */
  async trace(bearer: string): Promise<{ verdict: Verification; tokenId: string | null; wrongSecret: boolean; parseFailure?: ParseFailure }> {
    const parsed = parseToken(bearer);
    if (!parsed.ok) {
      const verdict: Verification = parsed.reason === 'empty' ? { ok: false, reason: 'missing', detail: FAILURE_DETAIL.missing } : MALFORMED[parsed.reason];
      return { verdict, tokenId: null, wrongSecret: false, parseFailure: parsed.reason };
    }
    const found = await this.resolve(parsed, this.clock.now());
    if ('identity' in found) return { verdict: { ok: true, status: 200, identity: found.identity }, tokenId: parsed.id, wrongSecret: false };
    return { verdict: { ok: false, reason: found.reason, detail: FAILURE_DETAIL[found.reason] }, tokenId: parsed.id, wrongSecret: found.wrongSecret === true };
  }

  /** Reads the token and its identity from the store and decides; the one place that rule lives. */
  private async resolve(
    parsed: ParsedOk,
    now: number,
  ): Promise<{ identity: Identity; hash: string } | { reason: 'unknown' | 'revoked' | 'expired' | 'disabled'; wrongSecret?: boolean }> {
    const row = await this.store.lookup.token(parsed.id);
    if (!row) return { reason: 'unknown' };
    if (!secretMatches(parsed.secret, row.secret_hash)) return { reason: 'unknown', wrongSecret: true };
    if (row.revoked_at !== null) return { reason: 'revoked' };
    if (row.expires_at <= now) return { reason: 'expired' };
    if (row.actor_disabled) return { reason: 'disabled' };
    const held = this.held.get(row.actor_id) ?? (await this.loadHeld(row.actor_id));
    const identity: Identity = Object.freeze({
      tokenId: row.id,
      tokenName: row.name,
      actorId: row.actor_id,
      actorName: row.actor_name,
      actorKind: row.actor_kind,
      scopes: held.of(row.scopes),
      issuedAt: row.created_at,
      expiresAt: row.expires_at,
    });
    return { identity, hash: row.secret_hash };
  }

  invalidate(tokenId: string): void {
    this.store.lookup.refresh();
    this.positive.delete(tokenId);
    this.negative.delete(tokenId);
    this.vouched.delete(tokenId);
  }

  private isVouched(id: string | undefined, bearer: string | undefined): boolean {
    const known = id === undefined ? undefined : this.vouched.get(id);
    return known !== undefined && isSameToken(bearer!, known);
  }

  invalidateActor(actorId: string): void {
    this.store.lookup.refresh();
    this.heldEpoch++;
    if (actorId === '*') this.held.clear();
    else this.held.delete(actorId);
    for (const [id, entry] of this.positive) if (actorId === '*' || entry.identity.actorId === actorId) this.positive.delete(id);
  }

  private async loadHeld(actorId: string): Promise<HeldScopes> {
    const epoch = this.heldEpoch;
    const held = new HeldScopes(await this.store.lookup.scopesOfActor(actorId));
    if (epoch === this.heldEpoch) {
      if (this.held.size >= HELD_ENTRIES) this.held.delete(this.held.keys().next().value!);
      this.held.set(actorId, held);
    }
    return held;
  }

  /** A revocation learnt from another replica: drop the entry and refuse at once. */
  markRevoked(tokenId: string): void {
    this.store.lookup.refresh();
    this.positive.delete(tokenId);
    this.vouched.delete(tokenId);
    this.remember(tokenId, 'revoked', this.clock.now() + this.options.negativeTtlMs);
  }

  get cacheStats() {
    return { positive: this.positive.size, negative: this.negative.size };
  }

  private cachePositive(id: string, entry: Positive): void {
    if (this.positive.size >= this.options.cacheSize) {
      const oldest = this.positive.keys().next().value;
      if (oldest !== undefined) this.positive.delete(oldest);
    }
    this.positive.set(id, entry);
    const known = this.vouched.get(id);
    if (known?.hash === entry.hash && known.checksum === entry.checksum) return;
    this.vouch({ id, checksum: entry.checksum, hash: entry.hash }, { relay: true });
  }

  /**
   * A token another verifier of this process found valid (another thread's; see
   * forward-auth/listener.ts): its address's failure limit, which all threads share, spares it
   * here too. Vouching lets a token reach the store past the limit, nothing more: the store
   * still decides, so a vouch that arrives after a revocation grants nothing. `relay` passes it
   * on to this verifier's listeners as well: the main thread relays each thread's vouches to
   * every listener's threads (the main port's and authListen's), as they share one limit.
   */
  vouch(v: Vouch, options: { relay?: boolean } = {}): void {
    if (this.vouched.size >= this.options.cacheSize && !this.vouched.has(v.id)) {
      const oldest = this.vouched.keys().next().value;
      if (oldest !== undefined) this.vouched.delete(oldest);
    }
    this.vouched.set(v.id, v);
    if (options.relay) for (const listener of this.vouchListeners) listener(v);
  }

  /** Told of every token this verifier vouches for from a store hit, and of those relayed through it (vouch with relay). */
  onVouch(listener: (v: Vouch) => void): void {
    this.vouchListeners.push(listener);
  }

  private remember(id: string, reason: FailureReason, until: number): void {
    if (this.negative.size >= this.options.cacheSize) {
      const oldest = this.negative.keys().next().value;
      if (oldest !== undefined) this.negative.delete(oldest);
    }
    this.negative.set(id, { reason, until });
  }

  private failed(key: string, reason: FailureReason): Verification {
    this.limiter.fail(key);
    return this.refuse(reason);
  }

  private refuse(reason: FailureReason): Verification {
    this.onResult(reason);
    return REFUSALS[reason];
  }
}

const FAILURE_DETAIL: Record<FailureReason, string> = {
  missing: 'no bearer token was given',
  malformed: 'the token is malformed',
  unknown: 'the token is not known to this server',
  expired: 'the token has expired',
  revoked: 'the token has been revoked',
  disabled: "the token's identity is disabled",
  rate_limited: 'too many failed attempts from this address; wait and retry',
};

/** Refusals are constants: a flood of bad tokens allocates nothing per request. */
const REFUSALS = Object.fromEntries(
  Object.entries(FAILURE_DETAIL).map(([reason, detail]) => [reason, Object.freeze({ ok: false, reason, detail })]),
) as Record<FailureReason, Verification>;

/** One shared verdict per whole second left, so a flood from a limited address allocates nothing either. */
const RATE_LIMITED = new Map<number, Verification>();
function rateLimited(msLeft: number): Verification {
  const seconds = Math.max(1, Math.ceil(msLeft / 1000));
  let v = RATE_LIMITED.get(seconds);
  if (v === undefined) {
    v = Object.freeze({ ok: false as const, reason: 'rate_limited' as const, detail: FAILURE_DETAIL.rate_limited, retryAfter: seconds });
    if (RATE_LIMITED.size < 100_000) RATE_LIMITED.set(seconds, v);
  }
  return v;
}

const MALFORMED = Object.fromEntries(
  (['prefix', 'length', 'charset', 'checksum'] as const).map((p) => [p, Object.freeze({ ok: false, reason: 'malformed', detail: FAILURE_DETAIL.malformed, parseFailure: p })]),
) as Record<Exclude<ParseFailure, 'empty'>, Verification>;

const NONE: readonly string[] = Object.freeze([]);

/**
 * An identity's effective scopes, and what they leave of each token's scopes: an identity's tokens
 * mostly carry the same few scope lists, so a cold check reuses the one answer for its list (no
 * JSON parse or array per check). Dropped with the identity's entry on a grant change.
 */
class HeldScopes {
  private readonly set: ReadonlySet<string>;
  private readonly granted = new Map<string, readonly string[]>();

  constructor(scopes: readonly string[]) {
    this.set = new Set(scopes);
  }

  /** The token's scopes (its stored JSON list) that the identity still holds. */
  of(tokenScopes: string): readonly string[] {
    let kept = this.granted.get(tokenScopes);
    if (kept === undefined) {
      kept = Object.freeze((JSON.parse(tokenScopes) as string[]).filter((s) => this.set.has(s)));
      if (this.granted.size < GRANTED_LISTS) this.granted.set(tokenScopes, kept);
    }
    return kept;
  }
}

/** Distinct token scope lists remembered per identity. */
const GRANTED_LISTS = 64;

/** Identities whose scopes are kept in memory; the oldest is dropped beyond this. */
const HELD_ENTRIES = 100_000;

/** Scope check shared by forward-auth, the gate and the API: the required scopes the identity lacks. */
export function hasScopes(identity: Identity, required: readonly string[], satisfy: 'all' | 'any'): readonly string[] {
  if (!required.length) return NONE;
  // The common answer (nothing missing) allocates nothing.
  let held = 0;
  for (const s of required) if (identity.scopes.includes(s)) held++;
  if (satisfy === 'any' ? held > 0 : held === required.length) return NONE;
  return required.filter((s) => !identity.scopes.includes(s));
}
