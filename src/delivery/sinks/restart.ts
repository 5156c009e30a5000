import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../clock.js';
import { type KubeClients, resolveKube } from '../../kubernetes/client.js';
import { type KubeAction, KubernetesError, describeKubeError } from '../../kubernetes/errors.js';
import { ANNOTATION_RESTARTED_AT, ANNOTATION_RESTARTED_FOR, kubeTime } from '../../kubernetes/metadata.js';
import type { Logger } from '../../log.js';

export interface RestartTarget {
  kind: 'Deployment' | 'StatefulSet';
  namespace: string;
  name: string;
}

export interface RestartDeps {
  /** A KubeConfig or kubeClients(); absent = kubectl's lookup (see resolveKube). */
  kubernetes?: unknown;
  clock?: Clock;
  logger?: Logger;
  binding?: string;
  /**
   * A public reference to the token just delivered (its token id, or tokenRef() of it; never
   * the token). When given, a workload already restarted for it is left alone, so the delivery
   * step may call this on every attempt and a crash between "Secret written" and "restart"
   * still ends with exactly one restart. Without it, every call restarts.
   */
  revision?: string;
}

export interface RestartOutcome {
  target: RestartTarget;
  /** False when the workload was already restarted for this revision. */
  restarted: boolean;
}

export class RestartError extends Error {
  constructor(readonly failures: { target: RestartTarget; error: KubernetesError }[]) {
    super(`rollout restart failed for ${failures.map((f) => `${f.target.kind} ${f.target.namespace}/${f.target.name}: ${f.error.message}`).join('; ')}`);
    this.name = 'RestartError';
  }
}

const RESOURCE = { Deployment: 'deployments', StatefulSet: 'statefulsets' } as const;
const STRATEGIC_MERGE = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

/**
 * `kubectl rollout restart` for consumers that read their token only at start: sets
 * kubectl.kubernetes.io/restartedAt on the pod template, which rolls the pods. The caller
 * restarts only after a sink reported the token changed; `revision` makes a repeat harmless.
 * Every target is attempted; failures are reported together.
 */
export async function restartWorkloads(targets: RestartTarget[], deps: RestartDeps = {}, options: { revision?: string } = {}): Promise<RestartOutcome[]> {
  if (!targets.length) return [];
  const api = resolveKube(deps.kubernetes);
  const clock = deps.clock ?? systemClock;
  const revision = options.revision ?? deps.revision;
  const outcomes: RestartOutcome[] = [];
  const failures: { target: RestartTarget; error: KubernetesError }[] = [];
  for (const target of targets) {
    try {
      const restarted = await restartOne(api, target, clock, revision);
      outcomes.push({ target, restarted });
      deps.logger?.info({ binding: deps.binding, workload: `${target.kind} ${target.namespace}/${target.name}`, restarted }, restarted ? 'rollout restart' : 'rollout restart already done for this token');
    } catch (err) {
      const error = err instanceof KubernetesError ? err : describeKubeError(err, action(target, 'patch'));
      failures.push({ target, error });
      deps.logger?.warn({ binding: deps.binding, workload: `${target.kind} ${target.namespace}/${target.name}`, reason: error.failure }, error.message);
    }
  }
  if (failures.length) throw new RestartError(failures);
  return outcomes;
}

function action(target: RestartTarget, verb: KubeAction['verb']): KubeAction {
  return { verb, resource: RESOURCE[target.kind], group: 'apps', namespace: target.namespace, name: target.name };
}

async function restartOne(api: KubeClients, target: RestartTarget, clock: Clock, revision: string | undefined): Promise<boolean> {
  const ref = { name: target.name, namespace: target.namespace };
  if (revision) {
    let current: { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } };
    try {
      current = target.kind === 'Deployment' ? await api.apps.readNamespacedDeployment(ref) : await api.apps.readNamespacedStatefulSet(ref);
    } catch (err) {
      throw describeKubeError(err, action(target, 'get'));
    }
    if (current.spec?.template?.metadata?.annotations?.[ANNOTATION_RESTARTED_FOR] === revision) return false;
  }
  const body = {
    spec: {
      template: {
        metadata: {
          annotations: {
            [ANNOTATION_RESTARTED_AT]: kubeTime(clock.now()),
            ...(revision ? { [ANNOTATION_RESTARTED_FOR]: revision } : {}),
          },
        },
      },
    },
  };
  try {
    if (target.kind === 'Deployment') await api.apps.patchNamespacedDeployment({ ...ref, body }, STRATEGIC_MERGE);
    else await api.apps.patchNamespacedStatefulSet({ ...ref, body }, STRATEGIC_MERGE);
  } catch (err) {
    throw describeKubeError(err, action(target, 'patch'));
  }
  return true;
}
