import type { Store } from '../store/store.js';
import type { Verifier } from './verifier.js';

/** How long grant-change rows are kept: far beyond any poll's overlap. */
const GRANT_CHANGES_KEPT_MS = 60 * 60 * 1000;

/**
 * Learns of revocations and grant changes made by other processes sharing the store, by polling
 * two indexed columns. Works on both engines; on PostgreSQL a LISTEN/NOTIFY listener can call
 * `check()` early, and this poll stays as the reconcile for missed notifications.
 */
export class ChangeWatch {
  private cursor = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastPrune = 0;

  constructor(
    private readonly store: Store,
    private readonly verifier: Pick<Verifier, 'markRevoked' | 'invalidateActor'>,
    private readonly nowMs: () => number,
  ) {}

  async start(intervalMs = 500): Promise<void> {
    // Wall time, not the injected clock: this is about rows written by other processes.
    this.cursor = this.nowMs();
    this.timer = setInterval(() => void this.check().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  async check(): Promise<void> {
    const since = this.cursor - 2000; // overlap: replicas' clocks and commit order differ slightly
    const [revoked, granted] = await Promise.all([this.store.revokedSince(since), this.store.grantChangesSince(since)]);
    let newest = this.cursor;
    for (const r of revoked) {
      this.verifier.markRevoked(r.id);
      newest = Math.max(newest, r.revoked_at);
    }
    // A change seen twice (the overlap) only costs a cache miss.
    for (const actorId of new Set(granted.map((g) => g.actor_id))) this.verifier.invalidateActor(actorId);
    for (const g of granted) newest = Math.max(newest, g.changed_at);
    const now = this.nowMs();
    this.cursor = Math.max(newest, now - 2000);
    if (now - this.lastPrune > GRANT_CHANGES_KEPT_MS / 4) {
      this.lastPrune = now;
      await this.store.pruneGrantChanges(now - GRANT_CHANGES_KEPT_MS);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
