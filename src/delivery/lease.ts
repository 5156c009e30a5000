import type { Clock } from '../clock.js';
import { BindingQueries } from '../store/bindings.js';
import type { Store } from '../store/store.js';
import { LostLeadership } from './rotation.js';

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
}

/**
 * A row in `leases`, taken by conditional update (renew our own, or take over an expired one),
 * with a fencing token that grows on every change of holder. Each controller transaction checks
 * that the row still names this holder and fencing token, so a paused ex-leader cannot commit.
 */
export class StoreLease implements Leadership {
  private fencing = 0;
  leading = false;

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
    const res = await new BindingQueries(this.store).acquireLease(this.name, this.holder, this.clock.now(), this.options.ttlMs);
    this.leading = res.held;
    this.fencing = res.held ? res.fencing : 0;
    return res.held;
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
