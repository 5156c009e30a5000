import type { RequestOrigin } from './request-origin.js';
import type { Identity, Verification, Verifier } from './verifier.js';
import { hasScopes } from './verifier.js';

/**
 * The one decision (docs/architecture.md): a credential, the client's origin and a scope
 * requirement in; 200 with the identity, or 400 / 401 / 403 / 429 with the RFC 6750 challenge,
 * out. /auth (both ports and the front threads), the API's authentication, /metrics and the gate
 * answer with it; the store being unreachable (503) is the only answer it leaves to its callers.
 */
export interface Requirement {
  scopes: string[];
  satisfy: 'all' | 'any';
}

/** More than one credential in one request: refused with 400, as RFC 6750 §2 asks (one method, one token). */
export const TWO_CREDENTIALS: unique symbol = Symbol('two credentials');
export type Credential = string | undefined | typeof TWO_CREDENTIALS;

const REALM = 'realm="tokenwarden"';

export type Refusal = { status: 400 | 401 | 403 | 429; error: string; description: string; scope?: string; retryAfter?: number };
export type Decision = { status: 200; identity: Identity } | Refusal;

/** Refusing verdicts are shared constants (see Verifier), so their decisions can be too; an allowing verdict is its own decision. */
const refusalOf = new WeakMap<Verification, Refusal>();

/** The verdict plus the scope requirement → what to answer. */
export function toDecision(verifier: Verifier, v: Verification, requirement: Requirement): Decision {
  if (!v.ok) {
    let d = refusalOf.get(v);
    if (d === undefined) {
      d =
        v.reason === 'rate_limited'
          ? { status: 429, error: 'rate_limited', description: v.detail, retryAfter: v.retryAfter }
          : { status: 401, error: v.reason === 'missing' ? '' : 'invalid_token', description: v.detail };
      refusalOf.set(v, d);
    }
    return d;
  }
  const missing = hasScopes(v.identity, requirement.scopes, requirement.satisfy);
  if (missing.length) {
    verifier.onResult('insufficient_scope');
    return {
      status: 403,
      error: 'insufficient_scope',
      description: `the token lacks ${requirement.satisfy === 'any' ? 'any of ' : ''}${missing.join(' ')}`,
      scope: requirement.scopes.join(' '),
    };
  }
  return v;
}

/** The answer to a request carrying more than one credential (see credentialOf). */
export const TWO_CREDENTIALS_REFUSAL: Refusal = Object.freeze({
  status: 400 as const,
  error: 'invalid_request',
  description: 'the request carries more than one credential (two Authorization headers, or two tokens in one); send exactly one bearer token',
});

/** The decision when it needs no I/O (cached, malformed, rate limited, two credentials); `undefined` when the store must be asked. */
export function decideCached(verifier: Verifier, bearer: Credential, source: RequestOrigin, requirement: Requirement): Decision | undefined {
  if (bearer === TWO_CREDENTIALS) {
    verifier.onResult('malformed');
    return TWO_CREDENTIALS_REFUSAL;
  }
  const v = verifier.verifyCached(bearer, source);
  return v === undefined ? undefined : toDecision(verifier, v, requirement);
}

export async function decide(verifier: Verifier, bearer: Credential, source: RequestOrigin, requirement: Requirement): Promise<Decision> {
  if (bearer === TWO_CREDENTIALS) return decideCached(verifier, bearer, source, requirement)!;
  return toDecision(verifier, await verifier.verify(bearer, source), requirement);
}

/** RFC 6750 §3 challenge. */
export function challenge(d: Refusal): string {
  if (!d.error) return `Bearer ${REALM}`;
  let out = `Bearer ${REALM}, error="${d.error === 'rate_limited' ? 'invalid_request' : d.error}", error_description="${d.description.replace(/"/g, "'")}"`;
  if (d.scope) out += `, scope="${d.scope}"`;
  return out;
}

