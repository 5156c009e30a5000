import type { Clock } from '../clock.js';

/** Counts failed attempts per source in a fixed window; a source over the limit is refused until the window ends. */
export class FailureLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  blocked(source: string): boolean {
    return this.blockedFor(source) > 0;
  }

  /** Milliseconds left in the source's window when it is over the limit, else 0. */
  blockedFor(source: string): number {
    if (this.limit <= 0) return 0;
    const w = this.windows.get(source);
    if (!w) return 0;
    const left = w.start + this.windowMs - this.clock.now();
    if (left <= 0) {
      this.windows.delete(source);
      return 0;
    }
    return w.count >= this.limit ? left : 0;
  }

  fail(source: string): void {
    if (this.limit <= 0) return;
    const now = this.clock.now();
    const w = this.windows.get(source);
    if (!w || now - w.start >= this.windowMs) {
      if (this.windows.size > 100_000) this.sweep(now);
      this.windows.set(source, { start: now, count: 1 });
    } else {
      w.count++;
    }
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k);
  }
}
