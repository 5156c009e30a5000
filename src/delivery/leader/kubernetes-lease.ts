import { type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../clock.js';
import { type KubeClients, resolveKube } from '../../kubernetes/client.js';
import { type KubeAction, describeKubeError, isConflict, isNotFound } from '../../kubernetes/errors.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import type { Leadership, LeadershipStatus } from './lease.js';
import { LostLeadership } from '../rotation/rotation.js';

export interface KubernetesLeaseOptions {
  /** Default: the namespace of the current context (the pod's own namespace in a cluster). */
  namespace?: string;
  /** Default "tokenwarden-controller". */
  name?: string;
  /** This replica, e.g. the pod name. */
  identity: string;
  /** Default 15 s, as client-go. Call acquire() well within it (every few seconds). */
  leaseDurationSeconds?: number;
}

export interface KubernetesLeaseDeps {
  kubernetes?: unknown;
  clock?: Clock;
  logger?: Logger;
}

interface Observation {
  resourceVersion: string | undefined;
  /** Local time at which this replica first saw that version of the record. */
  at: number;
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, the way client-go does it:
 *  - the holder renews `renewTime` within `leaseDurationSeconds`;
 *  - another replica takes over only after the record has not changed for a whole lease
 *    duration *by its own clock* (so clocks that disagree between nodes do not matter), or at
 *    once when the holder released it (empty holderIdentity);
 *  - every write is a PUT guarded by resourceVersion, so of two replicas racing, one gets 409
 *    and has simply lost;
 *  - `leaseTransitions` counts changes of holder; the fencing token is leaseTransitions + 1.
 */
export class KubernetesLease implements Leadership {
  readonly holder: string;
  leading = false;
  private fencing = 0;
  private renewedAt = 0;
  private observed: Observation | undefined;
  private readonly namespace: string;
  private readonly name: string;
  private readonly durationMs: number;
  private readonly clock: Clock;
  private clients: KubeClients | undefined;
  private seen: { holder: string | null; since: number | null } = { holder: null, since: null };

  constructor(
    private readonly options: KubernetesLeaseOptions,
    private readonly deps: KubernetesLeaseDeps = {},
  ) {
    this.holder = options.identity;
    this.clock = deps.clock ?? systemClock;
    this.durationMs = (options.leaseDurationSeconds ?? 15) * 1000;
    this.name = options.name ?? 'tokenwarden-controller';
    this.namespace = options.namespace ?? this.api.defaultNamespace;
  }

  get fencingToken(): number {
    return this.fencing;
  }

  status(): LeadershipStatus {
    return { leading: this.leading, ...this.seen };
  }

  async acquire(): Promise<boolean> {
    const now = this.clock.now();
    try {
      const lease = await this.read();
      if (!lease) return await this.create(now);
      const spec = lease.spec ?? {};
      const rv = lease.metadata?.resourceVersion;
      if (!this.observed || this.observed.resourceVersion !== rv) this.observed = { resourceVersion: rv, at: now };
      const current = spec.holderIdentity ?? '';
      const acquired = spec.acquireTime ? new Date(spec.acquireTime as unknown as string | Date).getTime() : Number.NaN;
      this.seen = { holder: current || null, since: current && Number.isFinite(acquired) ? acquired : null };
      const duration = (spec.leaseDurationSeconds ?? this.durationMs / 1000) * 1000;
      if (current && current !== this.holder && this.observed.at + duration > now) return this.lost();
      const takeover = current !== this.holder;
      const transitions = (spec.leaseTransitions ?? 0) + (takeover ? 1 : 0);
      const body: V1Lease = {
        ...lease,
        spec: {
          ...spec,
          holderIdentity: this.holder,
          leaseDurationSeconds: this.durationMs / 1000,
          renewTime: new V1MicroTime(now),
          acquireTime: takeover ? new V1MicroTime(now) : spec.acquireTime,
          leaseTransitions: transitions,
        },
      };
      const written = await this.api.coordination.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body });
      if (takeover) this.deps.logger?.info({ lease: `${this.namespace}/${this.name}`, holder: this.holder, previous: current || null, transitions }, 'took the leader lease');
      return this.won(written, transitions, now);
    } catch (err) {
      if (isConflict(err)) return this.lost(); // another replica wrote first: it leads
      const error = describeKubeError(err, this.action(err));
      if (error.failure === 'forbidden' || error.failure === 'unauthorized') throw error;
      // A blip: stop leading until the lease is renewed again; the record stays ours if it still is.
      this.deps.logger?.warn({ lease: `${this.namespace}/${this.name}`, reason: error.failure }, error.message);
      return this.lost();
    }
  }

  /**
   * The store cannot join a transaction with the API server, so fencing is a check just before
   * commit: our own renewal deadline has not passed, and the Lease still names us with the same
   * number of transitions.
   */
  async fence(_tx: Store): Promise<void> {
    if (!this.leading || this.clock.now() >= this.renewedAt + this.durationMs) return this.fail();
    let lease: V1Lease | null;
    try {
      lease = await this.read();
    } catch {
      return this.fail();
    }
    if (!lease || lease.spec?.holderIdentity !== this.holder || (lease.spec?.leaseTransitions ?? 0) + 1 !== this.fencing) return this.fail();
  }

  /** Hands the lease over at shutdown: empty holder, so the next replica need not wait for expiry. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.read();
      if (!lease || lease.spec?.holderIdentity !== this.holder) return;
      const now = this.clock.now();
      await this.api.coordination.replaceNamespacedLease({
        name: this.name,
        namespace: this.namespace,
        body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new V1MicroTime(now), acquireTime: new V1MicroTime(now) } },
      });
      this.deps.logger?.info({ lease: `${this.namespace}/${this.name}`, holder: this.holder }, 'released the leader lease');
    } catch (err) {
      // Not fatal: the lease expires on its own.
      this.deps.logger?.warn({ lease: `${this.namespace}/${this.name}`, status: (err as { code?: number }).code }, 'could not release the leader lease; it will expire');
    }
  }

  private get api(): KubeClients {
    this.clients ??= resolveKube(this.deps.kubernetes);
    return this.clients;
  }

  private action(err: unknown): KubeAction {
    // The verb that failed is not known here; RBAC needs all three, so name the one most likely missing.
    const verb = isNotFound(err) ? 'create' : 'update';
    return { verb, resource: 'leases', group: 'coordination.k8s.io', namespace: this.namespace, name: this.name };
  }

  private async read(): Promise<V1Lease | null> {
    try {
      return await this.api.coordination.readNamespacedLease({ name: this.name, namespace: this.namespace });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw describeKubeError(err, { verb: 'get', resource: 'leases', group: 'coordination.k8s.io', namespace: this.namespace, name: this.name });
    }
  }

  private async create(now: number): Promise<boolean> {
    try {
      const written = await this.api.coordination.createNamespacedLease({
        namespace: this.namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.name, namespace: this.namespace, labels: { 'app.kubernetes.io/managed-by': 'tokenwarden' } },
          spec: {
            holderIdentity: this.holder,
            leaseDurationSeconds: this.durationMs / 1000,
            acquireTime: new V1MicroTime(now),
            renewTime: new V1MicroTime(now),
            leaseTransitions: 0,
          },
        },
      });
      this.deps.logger?.info({ lease: `${this.namespace}/${this.name}`, holder: this.holder }, 'created the leader lease');
      return this.won(written, 0, now);
    } catch (err) {
      if (isConflict(err)) return this.lost(); // AlreadyExists: another replica created it first
      throw describeKubeError(err, { verb: 'create', resource: 'leases', group: 'coordination.k8s.io', namespace: this.namespace, name: this.name });
    }
  }

  private won(written: V1Lease, transitions: number, now: number): boolean {
    this.observed = { resourceVersion: written.metadata?.resourceVersion, at: now };
    if (this.seen.holder !== this.holder) this.seen = { holder: this.holder, since: now };
    this.leading = true;
    this.fencing = transitions + 1;
    this.renewedAt = now;
    return true;
  }

  private lost(): boolean {
    this.leading = false;
    this.fencing = 0;
    return false;
  }

  private fail(): never {
    this.lost();
    throw new LostLeadership();
  }
}
