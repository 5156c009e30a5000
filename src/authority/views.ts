import { iso } from '../clock.js';
import type { ActorTable, RoleTable, TokenTable } from '../store/schema.js';
import type { AuditRow } from '../store/store.js';

const parseList = (json: string): string[] => JSON.parse(json) as string[];

/** What the API, the CLI and the UI see of identities, roles, tokens and the audit log: never a secret or a hash. */
export type TokenState = 'active' | 'expired' | 'revoked';

export interface TokenView {
  id: string;
  name: string;
  actor: string;
  actorId: string;
  scopes: string[];
  state: TokenState;
  createdAt: string;
  createdBy: string | null;
  expiresAt: string;
  revokedAt: string | null;
  revokedBy: string | null;
  revokeReason: string | null;
  replaces: string | null;
  /** The token that minted this one: it expires no later and is revoked with it. Null: it stands alone. */
  parent: string | null;
  bindingId: string | null;
  lastUsed: { at: string; ip: string | null; userAgent: string | null } | null;
}

export interface ActorView {
  id: string;
  name: string;
  kind: 'user' | 'service';
  description: string;
  roles: string[];
  scopes: string[];
  effectiveScopes: string[];
  disabled: boolean;
  createdAt: string;
}

export interface RoleView {
  name: string;
  description: string;
  scopes: string[];
  builtin: boolean;
}

export interface AuditView {
  seq: number;
  at: string;
  actor: string | null;
  tokenId: string | null;
  action: string;
  targetType: string;
  targetId: string | null;
  detail: Record<string, unknown>;
  sourceIp: string | null;
  requestId: string | null;
}

export function tokenState(row: Pick<TokenTable, 'revoked_at' | 'expires_at'>, now: number): TokenState {
  if (row.revoked_at !== null) return 'revoked';
  return row.expires_at <= now ? 'expired' : 'active';
}

export function toTokenView(r: TokenTable, actorName: string, now: number): TokenView {
  return {
    id: r.id,
    name: r.name,
    actor: actorName,
    actorId: r.actor_id,
    scopes: parseList(r.scopes),
    state: tokenState(r, now),
    createdAt: iso(r.created_at)!,
    createdBy: r.created_by,
    expiresAt: iso(r.expires_at)!,
    revokedAt: iso(r.revoked_at),
    revokedBy: r.revoked_by,
    revokeReason: r.revoke_reason,
    replaces: r.replaces,
    parent: r.parent ?? null,
    bindingId: r.binding_id,
    lastUsed: r.last_used_at === null ? null : { at: iso(r.last_used_at)!, ip: r.last_used_ip, userAgent: r.last_used_agent },
  };
}

export function toActorView(a: ActorTable, roles: string[], effective: string[]): ActorView {
  return {
    id: a.id,
    name: a.name,
    kind: a.kind,
    description: a.description,
    roles,
    scopes: parseList(a.scopes),
    effectiveScopes: effective,
    disabled: !!a.disabled,
    createdAt: iso(a.created_at)!,
  };
}

export function toRoleView(r: RoleTable): RoleView {
  return { name: r.name, description: r.description, scopes: parseList(r.scopes), builtin: !!r.builtin };
}

export function toAuditView(r: AuditRow): AuditView {
  return {
    seq: Number(r.seq),
    at: iso(r.at)!,
    actor: r.actor_name,
    tokenId: r.token_id,
    action: r.action,
    targetType: r.target_type,
    targetId: r.target_id,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
    sourceIp: r.source_ip,
    requestId: r.request_id,
  };
}
