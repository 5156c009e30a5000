/** The permissions tokenwarden itself checks, and the roles it ships. Operators add their own scopes. */
export const PERMISSIONS = {
  adminToken: 'admin:token',
  issueService: 'token.issue.service',
  actorManage: 'actor.manage',
  roleManage: 'role.manage',
  auditRead: 'audit.read',
  metricsRead: 'metrics.read',
  introspect: 'token.introspect',
  bindingManage: 'binding.manage',
  bindingRead: 'binding.read',
} as const;

export const BUILTIN_SCOPES: Record<string, string> = {
  'admin:token': 'Create, list and revoke tokens of any identity',
  'token.issue.service': "Issue tokens for bot- service identities, limited to scopes the caller's token holds",
  'actor.manage': 'Create identities and assign roles',
  'role.manage': 'Define roles and scopes',
  'audit.read': 'Read the audit log',
  'metrics.read': "Scrape Prometheus metrics (tokenwarden's own and gated exporters)",
  'token.introspect': 'Introspect tokens (RFC 7662)',
  'binding.manage': 'Create, change, rotate and remove delivery bindings',
  'binding.read': 'Read delivery bindings and their state',
};

export const BUILTIN_ROLES: Record<string, { description: string; scopes: string[] }> = {
  admin: { description: 'Everything tokenwarden can do', scopes: Object.keys(BUILTIN_SCOPES) },
  'metrics-read': { description: 'Least privilege for a Prometheus scrape', scopes: ['metrics.read'] },
  auditor: { description: 'Read the audit log and token metadata', scopes: ['audit.read', 'binding.read'] },
  introspector: { description: 'Introspect tokens for a resource server', scopes: ['token.introspect'] },
  operator: { description: 'Manage delivery bindings (for bot- service identities)', scopes: ['binding.manage', 'binding.read', 'metrics.read', 'token.issue.service'] },
};

export const SCOPE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:\-/]{0,127}$/;
export const ROLE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Lowercase names (Gafaelfawr's rule), with @ and . so an e-mail can name a user. */
export const ACTOR_NAME = /^[a-z0-9][a-z0-9._@-]{0,127}$/;
export const SERVICE_PREFIX = 'bot-';

/** The kind a name implies: `bot-…` names are service identities, every other name a user (here, beside the prefix, so the CLI reads it without the issuance policy's imports). */
export function kindForName(name: string): 'user' | 'service' {
  return name.startsWith(SERVICE_PREFIX) ? 'service' : 'user';
}
