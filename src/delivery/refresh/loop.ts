import type { Clock } from '../../clock.js';
import type { SourceRefresher } from './refresher.js';

/**
 * Wakes up when the earliest binding is due and runs every due refresher. The clock decides
 * what is due; the timer only decides when to look (capped so a stepped clock is noticed).
 */
export class RefreshLoop {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = true;
  private readonly refreshers = new Map<string, SourceRefresher>();

  constructor(private readonly clock: Clock, private readonly maxSleepMs = 30_000) {}

  add(refresher: SourceRefresher): void {
    this.refreshers.set(refresher.binding, refresher);
    if (!this.stopped) this.schedule(0);
  }

  remove(binding: string): void {
    this.refreshers.delete(binding);
  }

  get all(): SourceRefresher[] {
    return [...this.refreshers.values()];
  }

  /** Runs every due refresher once, in parallel; resolves when they are done. */
  async runDue(): Promise<void> {
    await Promise.all(this.all.map((r) => r.runIfDue()));
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), Math.max(0, Math.min(delayMs, this.maxSleepMs)));
  }

  private async tick(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    try {
      await this.runDue();
    } catch {
      // Refreshers record their own failures; nothing here may stop the loop.
    } finally {
      this.running = false;
    }
    const next = Math.min(...this.all.map((r) => r.state.nextAttemptAt), Number.POSITIVE_INFINITY);
    this.schedule(Number.isFinite(next) ? next - this.clock.now() : this.maxSleepMs);
  }
}
