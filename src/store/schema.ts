import type { Generated } from 'kysely';

/** Timestamps are epoch milliseconds in every table, on both engines. */
export interface ActorTable {
  id: string;
  name: string;
  kind: 'user' | 'service';
  description: string;
  /** JSON array of scopes granted directly, besides those of the actor's roles. */
  scopes: string;
  disabled: number;
  created_at: number;
  created_by: string | null;
}

export interface RoleTable {
  name: string;
  description: string;
  /** JSON array of scope names. */
  scopes: string;
  builtin: number;
  created_at: number;
}

export interface ActorRoleTable {
  actor_id: string;
  role_name: string;
}

export interface ScopeTable {
  name: string;
  description: string;
  builtin: number;
  created_at: number;
}

export interface TokenTable {
  id: string;
  actor_id: string;
  name: string;
  /** JSON array of scope names. */
  scopes: string;
  secret_hash: string;
  created_at: number;
  created_by: string | null;
  expires_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
  revoke_reason: string | null;
  replaces: string | null;
  /** The token that minted this one (a caller without admin:token): it never outlives it and dies with it. */
  parent: string | null;
  binding_id: string | null;
  last_used_at: number | null;
  last_used_ip: string | null;
  last_used_agent: string | null;
}

export interface AuditTable {
  seq: Generated<number>;
  at: number;
  actor_id: string | null;
  actor_name: string | null;
  token_id: string | null;
  action: string;
  target_type: string;
  target_id: string | null;
  /** JSON object; never a secret or a hash. */
  detail: string;
  source_ip: string | null;
  request_id: string | null;
}

export interface SettingTable {
  key: string;
  value: string;
}

/** The webhook outbox (observe/notify.ts). The payload never holds a secret. */
export interface NotificationTable {
  id: string;
  dedup_key: string;
  kind: string;
  subject: string;
  /** JSON body sent to the webhook. */
  payload: string;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  delivered_at: number | null;
  failed_at: number | null;
  last_error: string | null;
}

export interface Database {
  actors: ActorTable;
  roles: RoleTable;
  actor_roles: ActorRoleTable;
  scopes: ScopeTable;
  tokens: TokenTable;
  audit: AuditTable;
  settings: SettingTable;
  notifications: NotificationTable;
  grant_changes: GrantChangeTable;
}

export interface GrantChangeTable {
  /** The identity whose grants changed, or `*` when a role changed (every identity holding it). */
  actor_id: string;
  /** Wall-clock epoch ms: read by other processes, like the revocation poll's cursor. */
  changed_at: number;
}
