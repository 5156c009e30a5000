import type { TokenTable } from './schema.js';
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

/** Where the next page of unused tokens starts: the last row of the previous one, in the report's order. */
export interface UnusedCursor {
  createdAt: number;
  id: string;
}

export interface UnusedQuery {
  now: number;
  /** A token is unused when its last use (or its creation, when never used) is before this instant. */
  cutoff: number;
  /** Tokens a binding delivers and rotates are left out unless asked for. */
  includeManaged: boolean;
  actorId?: string;
  after?: UnusedCursor;
  limit: number;
}

/**
 * The one definition of an unused token (seed 004's "last synced at"), for the API, the CLI,
 * the UI and the notifier alike: live, not used since `cutoff` (never-used tokens count from
 * their creation), unmanaged unless asked. Paged in creation order, oldest first, so no cap
 * ever hides the oldest ones.
 */
export function unusedTokens(store: Store, q: UnusedQuery): Promise<(TokenTable & { actor_name: string })[]> {
  let query = store.kysely
    .selectFrom('tokens')
    .innerJoin('actors', 'actors.id', 'tokens.actor_id')
    .selectAll('tokens')
    .select('actors.name as actor_name')
    .where('tokens.revoked_at', 'is', null)
    .where('tokens.expires_at', '>', q.now)
    .where((eb) =>
      eb.or([
        eb.and([eb('tokens.last_used_at', 'is', null), eb('tokens.created_at', '<', q.cutoff)]),
        eb('tokens.last_used_at', '<', q.cutoff),
      ]),
    );
  if (!q.includeManaged) query = query.where('tokens.binding_id', 'is', null);
  if (q.actorId) query = query.where('tokens.actor_id', '=', q.actorId);
  const after = q.after;
  if (after) {
    query = query.where((eb) =>
      eb.or([eb('tokens.created_at', '>', after.createdAt), eb.and([eb('tokens.created_at', '=', after.createdAt), eb('tokens.id', '>', after.id)])]),
    );
  }
  return query.orderBy('tokens.created_at').orderBy('tokens.id').limit(q.limit).execute();
}
