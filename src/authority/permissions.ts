import { PERMISSIONS as P } from './catalogue.js';

/**
 * What a caller's token must hold to reach each route: the permissions table. One hook in
 * src/http/app.ts enforces it and publishes it per operation in the OpenAPI document
 * (`security` and `x-required-scopes`); a route without a row refuses to start.
 *
 * `authenticated` routes need any valid token: what they then allow depends on the data (whose
 * token, which identity), and that rule lives with the data — the issuance policy
 * (issuance.ts) for minting, Authority for reading and revoking another identity's tokens.
 */
export type RouteAccess = { readonly scopes: readonly string[]; readonly satisfy: 'all' | 'any'; readonly note?: string };

const all = (...scopes: string[]): RouteAccess => ({ scopes, satisfy: 'all' });
const any = (...scopes: string[]): RouteAccess => ({ scopes, satisfy: 'any' });
const authenticated = (note: string): RouteAccess => ({ scopes: [], satisfy: 'all', note });

const OWN_OR_ADMIN = 'your own tokens; another identity\'s need admin:token (audit.read to read them)';

export const ROUTE_PERMISSIONS: Readonly<Record<string, RouteAccess>> = {
  'GET /metrics': all(P.metricsRead),

  'GET /api/v1/whoami': authenticated('any valid token'),
  'GET /api/v1/policy': authenticated('any valid token'),

  'POST /api/v1/tokens': authenticated('the issuance policy decides: your own identity; bot- identities with token.issue.service; any with admin:token'),
  'GET /api/v1/tokens': authenticated(OWN_OR_ADMIN),
  'GET /api/v1/tokens/unused': authenticated(OWN_OR_ADMIN),
  'GET /api/v1/tokens/:id': authenticated(OWN_OR_ADMIN),
  'DELETE /api/v1/tokens/:id': authenticated(OWN_OR_ADMIN),
  'POST /api/v1/tokens/:id/revoke': authenticated(OWN_OR_ADMIN),
  'POST /api/v1/tokens/:id/replace': authenticated('the issuance policy decides, as for a new token of that identity'),

  'GET /api/v1/actors': any(P.actorManage, P.adminToken, P.auditRead),
  'POST /api/v1/actors': all(P.actorManage),
  'GET /api/v1/actors/:name': authenticated('your own identity; another needs actor.manage, admin:token or audit.read'),
  'PATCH /api/v1/actors/:name': all(P.actorManage),
  'DELETE /api/v1/actors/:name': all(P.actorManage),

  'GET /api/v1/roles': authenticated('any valid token'),
  'POST /api/v1/roles': all(P.roleManage),
  'PATCH /api/v1/roles/:name': all(P.roleManage),
  'DELETE /api/v1/roles/:name': all(P.roleManage),
  'GET /api/v1/scopes': authenticated('any valid token'),
  'POST /api/v1/scopes': all(P.roleManage),

  'GET /api/v1/audit': all(P.auditRead),
  'POST /api/v1/introspect': all(P.introspect),
  'POST /api/v1/doctor': any(P.adminToken, P.introspect),

  'GET /api/v1/notifications': all(P.auditRead),
  'POST /api/v1/notifications/test': all(P.adminToken),

  'GET /api/v1/bindings': any(P.bindingRead, P.bindingManage),
  'GET /api/v1/bindings/:name': any(P.bindingRead, P.bindingManage),
  'GET /api/v1/bindings/:name/history': any(P.bindingRead, P.bindingManage),
  'POST /api/v1/bindings': all(P.bindingManage),
  'PUT /api/v1/bindings/:name': all(P.bindingManage),
  'DELETE /api/v1/bindings/:name': all(P.bindingManage),
  'POST /api/v1/bindings/:name/rotate': all(P.bindingManage),
};

/** The scopes of `access` that `held` lacks: empty when allowed. */
export function missingScopes(access: RouteAccess, held: readonly string[]): string[] {
  if (!access.scopes.length) return [];
  if (access.satisfy === 'any') return access.scopes.some((s) => held.includes(s)) ? [] : [...access.scopes];
  return access.scopes.filter((s) => !held.includes(s));
}

/** The refusal's wording, the same for every route. */
export function missingScopesDetail(access: RouteAccess, missing: readonly string[]): string {
  const quoted = missing.map((s) => `"${s}"`).join(', ');
  return access.satisfy === 'any' && missing.length > 1
    ? `one of the scopes ${quoted} is needed; your token holds none of them`
    : `the scope${missing.length > 1 ? 's' : ''} ${quoted} ${missing.length > 1 ? 'are' : 'is'} needed for this operation; your token does not hold ${missing.length > 1 ? 'them' : 'it'}`;
}
