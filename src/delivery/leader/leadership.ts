import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Clock } from '../../clock.js';
import type { ResolvedConfig } from '../../config/server-config.js';
import { kubeAccess } from '../../kubernetes/lazy.js';
import type { Logger } from '../../log.js';
import type { Leadership } from './lease.js';

/**
 * This replica's name in a lease: the pod name in a cluster (its hostname), made unique per
 * process — `host:pid:random`, plus `:pidns` (the inode of /proc/self/ns/pid) where Linux has
 * one, so that a pid is only ever compared with pids of the same namespace (see holderIsGone).
 */
export function leaseIdentity(): string {
  const ns = pidNamespace();
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}${ns ? `:${ns}` : ''}`;
}

function pidNamespace(): string {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '';
  } catch {
    return '';
  }
}

/**
 * True only when the lease holder `holder` (a leaseIdentity()) is provably dead: it ran on this
 * host, in this pid namespace, and its pid is gone (ESRCH). Any doubt — another host, another
 * namespace (a restarted container), a name of another shape, a pid that is alive (even if
 * reused by an unrelated process, or this process: two controllers in one process, as tests
 * make), EPERM — is "maybe alive": the lease is then left to expire (delivery.leaseTtl).
 */
export function holderIsGone(holder: string, self: string): boolean {
  if (holder === self) return false;
  const parts = holder.split(':');
  if (parts.length < 3 || parts.length > 4) return false;
  const [host, pidText, , ns = ''] = parts;
  if (host !== hostname() || ns !== pidNamespace() || !/^[1-9]\d{0,9}$/.test(pidText)) return false;
  const pid = Number(pidText);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
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
