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
    if (this.limit <= 0) return false;
    const w = this.windows.get(source);
    if (!w) return false;
    if (this.clock.now() - w.start >= this.windowMs) {
      this.windows.delete(source);
      return false;
    }
    return w.count >= this.limit;
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
