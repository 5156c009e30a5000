import { type Static, Type as T } from '@sinclair/typebox';
import type { KubeConfigOptions } from './client.js';

/**
 * The `kubernetes:` section of the server configuration (to be composed into the config schema
 * by whoever wires Kubernetes in):
 *
 *   kubernetes:
 *     kubeconfig: /etc/tokenwarden/kubeconfig   # or inCluster: true; neither = kubectl's lookup
 *     context: prod
 *     lease: { namespace: tokenwarden, name: tokenwarden-controller, durationSeconds: 15 }
 */
export const KubernetesConfigSchema = T.Object(
  {
    inCluster: T.Optional(T.Boolean({ description: "use the pod's service account (the default inside a pod when no kubeconfig is found)" })),
    kubeconfig: T.Optional(T.String({ minLength: 1, description: 'path of a kubeconfig file' })),
    context: T.Optional(T.String({ minLength: 1, description: 'a context of the kubeconfig; default its current-context' })),
    lease: T.Optional(
      T.Object(
        {
          namespace: T.Optional(T.String({ pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' })),
          name: T.Optional(T.String({ pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' })),
          durationSeconds: T.Optional(T.Integer({ minimum: 2, maximum: 3600 })),
        },
        { additionalProperties: false, description: 'elect the controller leader with a coordination.k8s.io Lease instead of the store lease' },
      ),
    ),
  },
  { additionalProperties: false },
);

export type KubernetesConfig = Static<typeof KubernetesConfigSchema>;

/** Which loader a `kubernetes:` section asks for; problems name the field. */
export function kubeConfigOptionsFrom(section: KubernetesConfig = {}): KubeConfigOptions {
  if (section.inCluster && section.kubeconfig) {
    throw new Error('kubernetes.inCluster and kubernetes.kubeconfig exclude each other: choose one');
  }
  if (section.inCluster) return { mode: 'in-cluster' };
  if (section.kubeconfig) return { mode: 'kubeconfig', path: section.kubeconfig, ...(section.context ? { context: section.context } : {}) };
  return { mode: 'auto', ...(section.context ? { context: section.context } : {}) };
}
