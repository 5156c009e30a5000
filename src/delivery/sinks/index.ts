import { type RestartTargetT, SinkSpec, type SinkSpecT } from '../../config/binding-schema.js';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../observe/log.js';
import { kubeAccess } from '../../kubernetes/lazy.js';
import type { Sink } from '../sink.js';
import { FileSink } from './file.js';

/** What sinks may need from the process. */
export interface SinkDeps {
  logger: Logger;
  clock?: Clock;
  /** Handed to the Kubernetes sink, restart and lease (a KubeConfig, clients, or the server's LazyKube); absent = kubectl's lookup. */
  kubernetes?: unknown;
}

/** Every sink kind the schema allows, as the `sink` label of the sink metrics names them. */
export const SINK_KINDS: readonly SinkSpecT['kind'][] = SinkSpec.anyOf.map((s) => s.properties.kind.const);

/** Picks the sink implementation by kind. The Kubernetes client is loaded on first use only: a process with file sinks never pays for it. */
export async function createSink(spec: SinkSpecT, deps: SinkDeps, binding?: string): Promise<Sink> {
  switch (spec.kind) {
    case 'file':
      return new FileSink(spec);
    case 'kubernetes-secret': {
      const { createKubernetesSecretSink } = await import('./kubernetes-secret.js');
      const { kind: _kind, ...secret } = spec;
      return createKubernetesSecretSink(secret, { kubernetes: await kubeAccess(deps.kubernetes), clock: deps.clock, logger: deps.logger, binding });
    }
  }
}

/**
 * Rollout-restarts consumers that do not re-read their token. `revision` (the new token's
 * public id) makes a repeat after a crash harmless: a workload already restarted for it is left alone.
 */
export async function restartConsumers(targets: RestartTargetT[], deps: SinkDeps, binding: string, revision: string): Promise<void> {
  if (!targets.length) return;
  const { restartWorkloads } = await import('../restart.js');
  await restartWorkloads(targets, { kubernetes: await kubeAccess(deps.kubernetes), clock: deps.clock, logger: deps.logger, binding, revision });
}

/** A description of a sink spec without secrets, the same one its Sink reports. */
export function describeSink(spec: SinkSpecT): string {
  return spec.kind === 'file' ? `file:${spec.path}` : `secret:${spec.namespace}/${spec.name}#${spec.key ?? 'token'}`;
}
