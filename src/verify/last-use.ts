import { type LastUseBatch, emptyLastUseBatch } from '../store/verify-lookup.js';
import { TOKEN_PREFIX, redactTokens } from '../token/format.js';

export type { LastUseBatch } from '../store/verify-lookup.js';

/** Where batches go: the store (`recordLastUse`), or — from an auth thread — the main thread, which writes them. */
export interface LastUseSink {
  recordLastUse(batch: LastUseBatch): Promise<void>;
}

/** User agents are kept to this many characters. */
const AGENT_LIMIT = 256;

/**
 * Coalesces last-use facts in memory and writes them in one batch per interval, so the
 * hot path never writes per request. A token used many times in an interval is one entry
 * (its latest use); the batch is kept column by column, so a use costs no object.
 */
export class LastUseRecorder {
  private pending: LastUseBatch = emptyLastUseBatch();
  /** Token id → its entry in `pending`. */
  private index = new Map<string, number>();
  /** The latest use seen by this process, kept beyond a flush for rotation's usage check. */
  private readonly seen = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly sink: LastUseSink) {}

  note(tokenId: string, at: number, source: { ip: string | null; userAgent: string | null }): void {
    const agent = source.userAgent;
    this.put(tokenId, at, source.ip, agent === null || agent.length <= AGENT_LIMIT ? agent : agent.slice(0, AGENT_LIMIT));
  }

  /** Batches another thread noted (an auth thread's): kept and written with this recorder's own. */
  absorb(batch: LastUseBatch): void {
    for (let i = 0; i < batch.ids.length; i++) this.put(batch.ids[i]!, batch.at[i]!, batch.ip[i]!, batch.agent[i]!);
  }

  /** One use: a newer fact replaces an older one for the same token, never the reverse (threads flush out of order). */
  private put(id: string, at: number, ip: string | null, agent: string | null): void {
    const p = this.pending;
    const i = this.index.get(id);
    if (i === undefined) {
      this.index.set(id, p.ids.length);
      p.ids.push(id);
      p.at.push(at);
      p.ip.push(ip);
      p.agent.push(agent);
    } else if (p.at[i]! <= at) {
      p.at[i] = at;
      p.ip[i] = ip;
      p.agent[i] = agent;
    }
    if ((this.seen.get(id) ?? 0) < at) this.seen.set(id, at);
  }

  lastSeen(tokenId: string): number | undefined {
    return this.seen.get(tokenId);
  }

  start(intervalMs = 1000): void {
    this.timer ??= setInterval(() => void this.flush().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  async flush(): Promise<void> {
    const batch = this.pending;
    if (!batch.ids.length) return;
    this.pending = emptyLastUseBatch();
    this.index = new Map();
    // A client that puts its token in the User-Agent must not get it stored; redacted here, off the hot path.
    for (let i = 0; i < batch.agent.length; i++) {
      const agent = batch.agent[i];
      if (agent != null && agent.includes(TOKEN_PREFIX)) batch.agent[i] = redactTokens(agent);
    }
    try {
      await this.sink.recordLastUse(batch);
    } catch (err) {
      // Keep what failed for the next attempt, unless newer facts arrived meanwhile.
      this.absorb(batch);
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
