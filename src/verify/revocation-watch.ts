import type { Store } from '../store/store.js';
import type { Verifier } from './verifier.js';

/**
 * Learns of revocations made by other processes sharing the store, by polling an indexed
 * column. Works on both engines; on PostgreSQL a LISTEN/NOTIFY listener can call `check()`
 * early, and this poll stays as the reconcile for missed notifications.
 */
export class RevocationWatch {
  private cursor = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly verifier: Pick<Verifier, 'markRevoked'>,
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
    const rows = await this.store.revokedSince(since);
    let newest = this.cursor;
    for (const r of rows) {
      this.verifier.markRevoked(r.id);
      newest = Math.max(newest, r.revoked_at);
    }
    this.cursor = Math.max(newest, this.nowMs() - 2000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
