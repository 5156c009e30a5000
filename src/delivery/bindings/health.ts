import type { BindingTable } from '../../store/bindings.js';

/**
 * What one sink holds, as last written or read back by the controller. No secret: the sink's
 * description, a token id, a state, and a sentence.
 * - ok: the binding's current token, and it verifies;
 * - missing: nothing there; other-token: another token (a restored backup, a hand edit);
 * - invalid: the current token, but it no longer verifies (revoked, expired, identity disabled or short of a scope);
 * - unreadable: it could not be read (no access, API down); write-failed: the last delivery to it failed.
 */
export type SinkStatus = 'ok' | 'missing' | 'other-token' | 'invalid' | 'unreadable' | 'write-failed';

export interface SinkState {
  sink: string;
  status: SinkStatus;
  /** The id of the token it holds, when known (tokenwarden's id, or an upstream token's fingerprint). */
  tokenId: string | null;
  detail: string | null;
  /** When this was learnt (epoch ms). */
  at: number;
}

export function parseSinkState(text: string | null | undefined): SinkState[] {
  if (!text) return [];
  try {
    const parsed = JSON.parse(text) as SinkState[];
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

/** The same facts (times aside): no store write when nothing changed. */
export function sameSinkState(a: SinkState[], b: SinkState[]): boolean {
  const key = (s: SinkState[]) => JSON.stringify(s.map((x) => [x.sink, x.status, x.tokenId, x.detail]));
  return key(a) === key(b);
}

/**
 * Whether every sink holds a token that verifies, as last known. An unreadable sink is not known
 * to be wrong (a read refused is not a missing token); no record yet (before the first check) is
 * taken as what the binding row says.
 */
export function sinksHold(row: Pick<BindingTable, 'sink_state' | 'token_id'>): boolean {
  return parseSinkState(row.sink_state).every((s) => s.status === 'unreadable' || (s.status === 'ok' && s.tokenId === row.token_id));
}
