import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock } from '../clock.js';
import type { ResolvedConfig } from '../config/config.js';
import { kubeAccess } from '../kubernetes/lazy.js';
import type { Logger } from '../observe/log.js';
import type { Leadership } from './lease.js';

/** This replica's name in a lease: the pod name in a cluster (its hostname), made unique per process. */
export function leaseIdentity(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/**
 * The leader election `delivery.leader` asks for. `store` (the default) returns undefined: the
 * delivery part makes its store lease. `kubernetes` connects to the cluster now (a start-up error
 * says what is wrong) and elects on the Lease named in `kubernetes.lease`.
 */
export async function leadershipFromConfig(
  config: ResolvedConfig,
  deps: { kubernetes: unknown; clock: Clock; logger: Logger; leaseTtlMs: number },
): Promise<Leadership | undefined> {
  if (config.delivery.leader !== 'kubernetes') return undefined;
  const { KubernetesLease } = await import('./kubernetes-lease.js');
  const lease = config.kubernetes?.lease ?? {};
  return new KubernetesLease(
    {
      identity: leaseIdentity(),
      ...(lease.namespace ? { namespace: lease.namespace } : {}),
      ...(lease.name ? { name: lease.name } : {}),
      leaseDurationSeconds: lease.durationSeconds ?? Math.max(2, Math.round(deps.leaseTtlMs / 1000)),
    },
    { kubernetes: await kubeAccess(deps.kubernetes), clock: deps.clock, logger: deps.logger.child({ part: 'delivery' }) },
  );
}
