import type { Store } from './store.js';

/** Queries behind the per-scrape gauges, the notification checker and the unused-token report. */

export interface LiveTokenRow {
  id: string;
  name: string;
  actor_name: string;
  binding_id: string | null;
  created_at: number;
  expires_at: number;
  last_used_at: number | null;
}

export async function countTokensByState(store: Store, now: number): Promise<{ active: number; expired: number; revoked: number }> {
  const rows = await store.kysely
    .selectFrom('tokens')
    .select((eb) => [
      eb
        .case()
        .when('revoked_at', 'is not', null)
        .then('revoked')
        .when('expires_at', '<=', now)
        .then('expired')
        .else('active')
        .end()
        .as('state'),
      eb.fn.countAll<number>().as('n'),
    ])
    .groupBy('state')
    .execute();
  const out = { active: 0, expired: 0, revoked: 0 };
  for (const r of rows) out[r.state as keyof typeof out] = Number(r.n);
  return out;
}

const liveColumns = [
  'tokens.id',
  'tokens.name',
  'actors.name as actor_name',
  'tokens.binding_id',
  'tokens.created_at',
  'tokens.expires_at',
  'tokens.last_used_at',
] as const;

/** Tokens neither revoked nor expired at `now`, with their actor's name. */
function liveTokens(store: Store, now: number) {
  return store.kysely
    .selectFrom('tokens')
    .innerJoin('actors', 'actors.id', 'tokens.actor_id')
    .select(liveColumns)
    .where('tokens.revoked_at', 'is', null)
    .where('tokens.expires_at', '>', now);
}

/** Live tokens, soonest expiry first (the ones an alert cares about when the list is capped). */
export function liveTokensByExpiry(store: Store, now: number, limit: number): Promise<LiveTokenRow[]> {
  return liveTokens(store, now)
    .orderBy('tokens.expires_at')
    .limit(limit)
    .execute();
}

/** Live tokens not bound to a binding that expire before `before`. */
export function unmanagedExpiringBefore(store: Store, now: number, before: number): Promise<LiveTokenRow[]> {
  return liveTokens(store, now)
    .where('tokens.binding_id', 'is', null)
    .where('tokens.expires_at', '<=', before)
    .orderBy('tokens.expires_at')
    .execute();
}

/** Live tokens whose last use (or creation, when never used) is before `cutoff`. */
export function liveTokensUnusedSince(store: Store, now: number, cutoff: number): Promise<LiveTokenRow[]> {
  return liveTokens(store, now)
    .where((eb) =>
      eb.or([
        eb.and([eb('tokens.last_used_at', 'is', null), eb('tokens.created_at', '<', cutoff)]),
        eb('tokens.last_used_at', '<', cutoff),
      ]),
    )
    .orderBy('tokens.created_at')
    .execute();
}
