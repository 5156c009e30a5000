import { AuthorizationV1Api } from '@kubernetes/client-node';
import type { KubeClients } from './client.js';
import { type KubeAction, describeKubeError, rbacHint } from './errors.js';

/** The verbs a Kubernetes Secret sink uses on its Secret (write, read back, replace, remove). */
export const SECRET_SINK_VERBS = ['get', 'create', 'update', 'patch', 'delete'] as const;

export interface SecretTarget {
  namespace: string;
  name: string;
  /** Who needs it, for the message (e.g. `binding "scrape"`). */
  owner: string;
}

/**
 * Asks the API server, as tokenwarden's own identity, whether it may do to each Secret what a
 * sink does (SelfSubjectAccessReview: nothing is read or written). One problem per missing verb,
 * naming the Secret, the binding and the RBAC rule to add; an API that cannot be reached or
 * rejects the credentials is one problem, said once.
 */
export async function secretAccessProblems(clients: KubeClients, targets: SecretTarget[]): Promise<string[]> {
  const api = clients.config.makeApiClient(AuthorizationV1Api);
  const problems: string[] = [];
  for (const t of targets) {
    for (const verb of SECRET_SINK_VERBS) {
      const action: KubeAction = { verb, resource: 'secrets', group: '', namespace: t.namespace, name: t.name };
      let allowed: boolean;
      try {
        const review = await api.createSelfSubjectAccessReview({
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            // RBAC cannot limit create by name, so a create is asked without one.
            spec: { resourceAttributes: { verb, resource: 'secrets', group: '', namespace: t.namespace, ...(verb === 'create' ? {} : { name: t.name }) } },
          },
        });
        allowed = review.status?.allowed === true;
      } catch (err) {
        const e = describeKubeError(err, action);
        return [...problems, `${t.owner}: ${e.message}`];
      }
      if (!allowed) problems.push(`${t.owner}: Kubernetes RBAC does not allow tokenwarden to ${verb} secret "${t.namespace}/${t.name}": ${rbacHint(action)}`);
    }
  }
  return problems;
}
