import { ApiException } from '@kubernetes/client-node';
import { redactTokens } from '../token/format.js';

/** What tokenwarden was doing when the API answered, so the error can say what to fix. */
export interface KubeAction {
  verb: 'get' | 'list' | 'create' | 'update' | 'patch' | 'delete';
  /** Plural resource name as RBAC spells it: secrets, deployments, statefulsets, leases. */
  resource: string;
  /** API group as RBAC spells it: "" for core, apps, coordination.k8s.io. */
  group: string;
  namespace: string;
  name: string;
}

export type KubeFailure = 'namespace-missing' | 'not-found' | 'forbidden' | 'unauthorized' | 'conflict' | 'invalid' | 'unavailable';

/**
 * An error from the Kubernetes API, turned into a sentence that says what to do. It never
 * carries the client's own message (which embeds response headers) nor any request body.
 */
export class KubernetesError extends Error {
  constructor(
    readonly failure: KubeFailure,
    message: string,
    /** The configuration field at fault, when there is one (e.g. "namespace"). */
    readonly field?: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'KubernetesError';
  }
}

interface StatusBody {
  reason?: string;
  message?: string;
  details?: { kind?: string; name?: string };
}

/** The HTTP status of a failed API call, or undefined for a network failure. */
export function statusCodeOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

function statusBody(err: unknown): StatusBody {
  if (!(err instanceof ApiException)) return {};
  const body: unknown = err.body;
  if (body && typeof body === 'object') return body as StatusBody;
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return {};
    }
  }
  return {};
}

export const isNotFound = (err: unknown) => statusCodeOf(err) === 404;
export const isConflict = (err: unknown) => statusCodeOf(err) === 409;
export const isAlreadyExists = (err: unknown) => statusCodeOf(err) === 409 && statusBody(err).reason === 'AlreadyExists';
/** A 404 that means the namespace itself is missing (what a create answers), not the object. */
export const isNamespaceMissing = (err: unknown) => statusCodeOf(err) === 404 && statusBody(err).details?.kind === 'namespaces';

export function rbacHint(action: Pick<KubeAction, 'verb' | 'resource' | 'group' | 'namespace'>): string {
  const group = action.group ? `apiGroups ["${action.group}"]` : 'apiGroups [""]';
  return `the service account needs verb "${action.verb}" on resource "${action.resource}" (${group}) in namespace "${action.namespace}"; see docs/kubernetes.md for the Role`;
}

export function describeKubeError(err: unknown, action: KubeAction): KubernetesError {
  if (err instanceof KubernetesError) return err;
  const code = statusCodeOf(err);
  const target = `${action.resource} "${action.namespace}/${action.name}"`;
  if (code === undefined) {
    // A network or client-side failure: its first line (an errno, a TLS complaint) helps; no token is in it.
    const e = err as { code?: string; message?: string; cause?: { code?: string } };
    const cause = e?.code ?? e?.cause?.code ?? redactTokens(String(e?.message ?? err).split('\n')[0]!.slice(0, 200));
    return new KubernetesError('unavailable', `cannot reach the Kubernetes API to ${action.verb} ${target}${cause ? ` (${cause})` : ''}`);
  }
  const body = statusBody(err);
  if (code === 401) {
    return new KubernetesError('unauthorized', `the Kubernetes API rejected tokenwarden's credentials (401) when trying to ${action.verb} ${target}; check the kubeconfig user or the service account token`, undefined, code);
  }
  if (code === 403) {
    return new KubernetesError('forbidden', `permission denied: Kubernetes RBAC does not allow tokenwarden to ${action.verb} ${target}: ${rbacHint(action)}`, undefined, code);
  }
  if (code === 404 && body.details?.kind === 'namespaces') {
    return new KubernetesError('namespace-missing', `namespace "${action.namespace}" does not exist in the cluster: create it or fix the namespace`, 'namespace', code);
  }
  if (code === 404) return new KubernetesError('not-found', `${target} does not exist`, 'name', code);
  if (code === 409) return new KubernetesError('conflict', `${target} was changed by someone else while tokenwarden updated it (409 Conflict)`, undefined, code);
  if (code === 400 || code === 422) {
    // API validation messages name fields, never Secret values (Kubernetes redacts those).
    return new KubernetesError('invalid', `Kubernetes refused to ${action.verb} ${target}: ${body.message ?? `HTTP ${code}`}`, undefined, code);
  }
  return new KubernetesError('unavailable', `the Kubernetes API failed to ${action.verb} ${target} (HTTP ${code}${body.reason ? ` ${body.reason}` : ''})`, undefined, code);
}
