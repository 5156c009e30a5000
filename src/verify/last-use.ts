import { redactTokens } from '../token/format.js';

/** One token's latest use, as a batch carries it. */
export interface LastUseRow {
  id: string;
  at: number;
  ip: string | null;
  agent: string | null;
}

/** Where batches go: the store (`recordLastUse`), or — from an auth thread — the main thread, which writes them. */
export interface LastUseSink {
  recordLastUse(rows: LastUseRow[]): Promise<void>;
}

/**
 * Coalesces last-use facts in memory and writes them in one batch per interval, so the
 * hot path never writes per request.
 */
export class LastUseRecorder {
  private pending = new Map<string, { at: number; ip: string | null; agent: string | null }>();
  /** The latest use seen by this process, kept beyond a flush for rotation's usage check. */
  private readonly seen = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly sink: LastUseSink) {}

  note(tokenId: string, at: number, source: { ip: string | null; userAgent: string | null }): void {
    const prev = this.pending.get(tokenId);
    if (prev) {
      prev.at = at;
      prev.ip = source.ip;
      prev.agent = source.userAgent?.slice(0, 256) ?? null;
    } else {
      this.pending.set(tokenId, { at, ip: source.ip, agent: source.userAgent?.slice(0, 256) ?? null });
    }
    this.seen.set(tokenId, at);
  }

  /** Batches another thread noted (an auth thread's): kept and written with this recorder's own. */
  absorb(rows: readonly LastUseRow[]): void {
    for (const r of rows) {
      const prev = this.pending.get(r.id);
      if (!prev || prev.at <= r.at) this.pending.set(r.id, { at: r.at, ip: r.ip, agent: r.agent });
      if ((this.seen.get(r.id) ?? 0) < r.at) this.seen.set(r.id, r.at);
    }
  }

  lastSeen(tokenId: string): number | undefined {
    return this.seen.get(tokenId);
  }

  start(intervalMs = 1000): void {
    this.timer ??= setInterval(() => void this.flush().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  async flush(): Promise<void> {
    if (!this.pending.size) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      // A client that puts its token in the User-Agent must not get it stored; redacted here, off the hot path.
      await this.sink.recordLastUse([...batch].map(([id, v]) => ({ id, ...v, agent: v.agent === null ? null : redactTokens(v.agent) })));
    } catch (err) {
      // Keep what failed for the next attempt, unless newer facts arrived meanwhile.
      for (const [id, v] of batch) if (!this.pending.has(id)) this.pending.set(id, v);
      throw err;
    }
    if (this.seen.size > 200_000) this.seen.clear();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => undefined);
  }
}
