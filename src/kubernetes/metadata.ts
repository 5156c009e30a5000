import { createHash } from 'node:crypto';
import { parseToken } from '../token/format.js';

/** The marks tokenwarden puts on everything it manages, so it can find and clean up all of it. */
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'tokenwarden';
export const LABEL_BINDING = 'tokenwarden.dev/binding';
export const ANNOTATION_TOKEN_ID = 'tokenwarden.dev/token-id';
export const ANNOTATION_ROTATED_AT = 'tokenwarden.dev/rotated-at';
/** Set only on Secrets tokenwarden created, so removal may delete the whole Secret. */
export const ANNOTATION_CREATED = 'tokenwarden.dev/created';
/** The annotation `kubectl rollout restart` sets on a pod template. */
export const ANNOTATION_RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';
/** Which token a workload was last restarted for, so a retried restart does not restart it again. */
export const ANNOTATION_RESTARTED_FOR = 'tokenwarden.dev/restarted-for';

/**
 * A public reference to a token that is safe on any object: a tokenwarden token's public id, or
 * for an upstream token (a JWT from another issuer) a short SHA-256 fingerprint. Upstream tokens
 * are high-entropy, so 48 bits of their hash reveal nothing usable.
 */
export function tokenRef(token: string): string {
  const parsed = parseToken(token);
  if (parsed.ok) return parsed.id;
  return `sha256-${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;
}

/** Kubernetes RFC 3339 time without fractions, as kubectl writes restartedAt. */
export function kubeTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export interface FieldProblem {
  field: string;
  message: string;
}

export function checkNamespace(value: unknown, field: string): FieldProblem[] {
  if (typeof value !== 'string' || !value) return [{ field, message: 'a namespace is required' }];
  if (value.length > 63 || !DNS_LABEL.test(value)) return [{ field, message: `"${value}" is not a valid namespace name (lower-case letters, digits and "-", at most 63)` }];
  return [];
}

export function checkObjectName(value: unknown, field: string): FieldProblem[] {
  if (typeof value !== 'string' || !value) return [{ field, message: 'a name is required' }];
  if (value.length > 253 || !DNS_SUBDOMAIN.test(value)) return [{ field, message: `"${value}" is not a valid Kubernetes object name (lower-case letters, digits, "-" and ".")` }];
  return [];
}

export function checkSecretKey(value: unknown, field: string): FieldProblem[] {
  if (typeof value !== 'string' || !value) return [{ field, message: 'a Secret key is required' }];
  if (value.length > 253 || !SECRET_KEY.test(value)) return [{ field, message: `"${value}" is not a valid Secret key (letters, digits, "-", "_" and ".")` }];
  return [];
}

export function checkLabels(labels: unknown, field: string, kind: 'labels' | 'annotations'): FieldProblem[] {
  if (labels === undefined) return [];
  if (!labels || typeof labels !== 'object' || Array.isArray(labels)) return [{ field, message: `${kind} must be a map of strings` }];
  const problems: FieldProblem[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (!QUALIFIED_NAME.test(k) || k.length > 316) problems.push({ field: `${field}.${k}`, message: `"${k}" is not a valid ${kind === 'labels' ? 'label' : 'annotation'} key` });
    if (typeof v !== 'string') problems.push({ field: `${field}.${k}`, message: 'the value must be a string' });
    else if (kind === 'labels' && (v.length > 63 || !LABEL_VALUE.test(v))) problems.push({ field: `${field}.${k}`, message: `"${v}" is not a valid label value (at most 63 letters, digits, "-", "_", ".")` });
  }
  return problems;
}
