import type { Clock } from '../../clock.js';
import { BindingQueries } from '../../store/bindings.js';
import type { Store } from '../../store/store.js';
import { holderIsGone } from './leadership.js';
import { LostLeadership } from '../rotation/rotation.js';

/** Who leads, as this process last saw it (for /readyz). */
export interface LeadershipStatus {
  leading: boolean;
  /** The holder of record; null before the first attempt or when nobody holds it. */
  holder: string | null;
  /** Epoch ms since which `holder` has held it, as far as this process knows; null if unknown. */
  since: number | null;
}

/**
 * One leader among replicas. The store lease works on both engines; a Kubernetes Lease can
 * implement the same interface (see src/delivery/ for the option).
 */
export interface Leadership {
  readonly holder: string;
  /** Acquires or renews; true while this process leads. */
  acquire(): Promise<boolean>;
  /** Inside a transaction: throws LostLeadership when another process has taken over since. */
  fence(tx: Store): Promise<void>;
  release(): Promise<void>;
  readonly leading: boolean;
  status?(): LeadershipStatus;
}

/**
 * A row in `leases`, taken by conditional update (renew our own, or take over an expired one),
 * with a fencing token that grows on every change of holder. Each controller transaction checks
 * that the row still names this holder and fencing token, so a paused ex-leader cannot commit.
 *
 * A holder that is provably dead (holderIsGone: same host and pid namespace, pid gone — the
 * process this one replaces after a crash) is replaced at once instead of after `ttlMs`.
 */
export class StoreLease implements Leadership {
  private fencing = 0;
  leading = false;
  private seen: { holder: string | null; since: number | null } = { holder: null, since: null };

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    readonly holder: string,
    private readonly options: { name?: string; ttlMs: number },
  ) {}

  private get name(): string {
    return this.options.name ?? 'delivery-controller';
  }

  async acquire(): Promise<boolean> {
    const q = new BindingQueries(this.store);
    const now = this.clock.now();
    let res = await q.acquireLease(this.name, this.holder, now, this.options.ttlMs);
    if (!res.held && holderIsGone(res.holder, this.holder) && (await q.takeOverLease(this.name, res.holder, this.holder, now, this.options.ttlMs))) {
      res = await q.acquireLease(this.name, this.holder, now, this.options.ttlMs);
    }
    const previous = this.seen.holder;
    this.seen = { holder: res.holder, since: res.holder === previous ? this.seen.since : res.held || previous !== null ? now : null };
    this.leading = res.held;
    this.fencing = res.held ? res.fencing : 0;
    return res.held;
  }

  status(): LeadershipStatus {
    return { leading: this.leading, ...this.seen };
  }

  get fencingToken(): number {
    return this.fencing;
  }

  async fence(tx: Store): Promise<void> {
    if (!this.leading || !(await new BindingQueries(tx).holdsLease(this.name, this.holder, this.fencing, this.clock.now()))) {
      this.leading = false;
      throw new LostLeadership();
    }
  }

  async release(): Promise<void> {
    if (this.leading) await new BindingQueries(this.store).releaseLease(this.name, this.holder).catch(() => undefined);
    this.leading = false;
  }
}
