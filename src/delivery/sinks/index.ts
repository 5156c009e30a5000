import { type RestartTargetT, SinkSpec, type SinkSpecT } from '../../config/binding-schema.js';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import { kubeAccess } from '../../kubernetes/lazy.js';
import type { Sink } from './sink.js';
import type { FileConfinement, SinkOrigin } from './confine.js';
import { FileSink, type SinkRecord } from './file-sink.js';

export type { FileConfinement, SinkOrigin } from './confine.js';
export type { SinkRecord } from './file-sink.js';

/** What sinks may need from the process. */
export interface SinkDeps {
  logger: Logger;
  clock?: Clock;
  /** Where file sinks may write and what they never touch (`delivery.fileRoots`, tokenwarden's own files); see confine.ts. */
  confinement?: FileConfinement;
  /** Handed to the Kubernetes sink, restart and lease (a KubeConfig, clients, or the server's LazyKube); absent = kubectl's lookup. */
  kubernetes?: unknown;
}

/** Every sink kind the schema allows, as the `sink` label of the sink metrics names them. */
export const SINK_KINDS: readonly SinkSpecT['kind'][] = SinkSpec.anyOf.map((s) => s.properties.kind.const);

/**
 * A sink as a binding's `delivered` record keeps it: its spec, and for a file the SHA-256 of what
 * was last written there (so removal deletes only a file that still holds it).
 */
export type DeliveredSink = SinkSpecT & { sha256?: string };

/** Which binding a sink works for: who declared it, and what its delivered record says of this sink. */
export interface SinkContext {
  origin: SinkOrigin;
  record: SinkRecord;
}

/** The context of `spec` for a binding with this origin and delivered record (the JSON column or its parsed form). */
export function sinkContext(origin: SinkOrigin, delivered: string | DeliveredSink[], spec: SinkSpecT): SinkContext {
  const list = typeof delivered === 'string' ? (JSON.parse(delivered) as DeliveredSink[]) : delivered;
  const key = describeSink(spec);
  const entry = list.find((d) => describeSink(d) === key);
  return { origin, record: entry ? { delivered: true, ...(entry.sha256 ? { sha256: entry.sha256 } : {}) } : { delivered: false } };
}

/**
 * Picks the sink implementation by kind. The Kubernetes client is loaded on first use only: a
 * process with file sinks never pays for it. `context` (the server's bindings always pass it)
 * confines an API binding's files and lets sinks tell their own files and Secrets from foreign
 * ones; without it (the agent) a file sink keeps no record of what it wrote.
 */
export async function createSink(spec: SinkSpecT, deps: SinkDeps, binding?: string, context?: SinkContext): Promise<Sink> {
  switch (spec.kind) {
    case 'file':
      return new FileSink(spec, { origin: context?.origin, record: context?.record, confinement: deps.confinement, logger: deps.logger });
    case 'kubernetes-secret': {
      const { createKubernetesSecretSink } = await import('./secret-sink.js');
      const { kind: _kind, ...secret } = spec;
      return createKubernetesSecretSink(secret, { kubernetes: await kubeAccess(deps.kubernetes), clock: deps.clock, logger: deps.logger, binding, record: context?.record });
    }
  }
}

/**
 * Rollout-restarts consumers that do not re-read their token. `revision` (the new token's
 * public id) makes a repeat after a crash harmless: a workload already restarted for it is left alone.
 */
export async function restartConsumers(targets: RestartTargetT[], deps: SinkDeps, binding: string, revision: string): Promise<void> {
  if (!targets.length) return;
  const { restartWorkloads } = await import('./restart.js');
  await restartWorkloads(targets, { kubernetes: await kubeAccess(deps.kubernetes), clock: deps.clock, logger: deps.logger, binding, revision });
}

/** A description of a sink spec without secrets, the same one its Sink reports. */
export function describeSink(spec: SinkSpecT): string {
  return spec.kind === 'file' ? `file:${spec.path}` : `secret:${spec.namespace}/${spec.name}#${spec.key ?? 'token'}`;
}
