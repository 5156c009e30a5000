import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { Problem, problem } from '../errors.js';
import type { AuditFilter, Store } from '../store/store.js';
import type { ActorTable, RoleTable, TokenTable } from '../store/schema.js';
import { type UnusedCursor, unusedTokens } from '../store/observe.js';
import { mintToken } from '../token/format.js';
import { BindingQueries } from '../store/bindings.js';
import { BUILTIN_ROLES, BUILTIN_SCOPES, PERMISSIONS, ROLE_NAME, SCOPE_NAME } from './catalogue.js';
import { AuthorityEvents } from './events.js';
import { type IssueFields, IssuancePolicy, type Principal, TOKEN_FIELDS, type TokenPolicy, holds, validateActorName } from './issuance.js';

export type { Principal, TokenPolicy } from './issuance.js';
export type { ActorView, AuditView, RoleView, TokenState, TokenView } from './views.js';
import { type ActorView, type AuditView, type RoleView, type TokenState, type TokenView, toActorView, toAuditView, toRoleView, toTokenView } from './views.js';

export const SYSTEM_PRINCIPAL: Principal = {
  actorId: 'system',
  actorName: 'system',
  tokenId: null,
  scopes: Object.keys(BUILTIN_SCOPES),
};

export interface CreateTokenInput {
  actor?: string;
  name: string;
  scopes: string[];
  /** Lifetime in milliseconds from now; or an absolute expiry. Neither: the policy default. */
  lifetimeMs?: number;
  expiresAt?: number;
  bindingId?: string | null;
}

export interface CreatedToken {
  token: TokenView;
  /** The bearer string, returned exactly once. */
  plaintext: string;
  /** Set when the expiry asked for was brought forward to the parent token's (which id). */
  expiryCappedBy?: string | null;
}

export interface RevokeOptions {
  /**
   * A revocation asked for by a person (API, CLI, UI): refused with 409 when a binding delivers
   * the token or it is the caller's own token, unless `force`. The controller's own revocations are not guarded.
   */
  guard?: boolean;
  force?: boolean;
}

const parseList = (json: string): string[] => JSON.parse(json) as string[];

export class Authority {
  readonly issuance: IssuancePolicy;

  constructor(
    readonly store: Store,
    readonly clock: Clock,
    readonly policy: TokenPolicy,
    readonly events: AuthorityEvents = new AuthorityEvents(),
  ) {
    this.issuance = new IssuancePolicy(policy, clock);
  }

  /** The same authority (rules, clock, event emitter) inside the caller's transaction. */
  within(tx: Store): Authority {
    return new Authority(tx, this.clock, this.policy, this.events);
  }

  // ---- set-up ----

  /** Built-in scopes and roles are (re)declared on every start so upgrades add new ones. */
  async ensureBuiltins(): Promise<void> {
    const now = this.clock.now();
    await this.store.transaction(async (s) => {
      for (const [name, description] of Object.entries(BUILTIN_SCOPES)) {
        await s.upsertScope({ name, description, builtin: 1, created_at: now });
      }
      for (const [name, role] of Object.entries(BUILTIN_ROLES)) {
        await s.upsertRole({ name, description: role.description, scopes: JSON.stringify(role.scopes), builtin: 1, created_at: now });
      }
    });
  }

  /**
   * First start only: creates the `admin` user with the admin role and returns its first token.
   * Later starts return null, so the credential is printed exactly once.
   */
  async bootstrap(): Promise<CreatedToken | null> {
    await this.ensureBuiltins();
    return this.store.transaction(async (s) => {
      if ((await s.getSetting('bootstrapped_at')) !== undefined) return null;
      const now = this.clock.now();
      const actor: ActorTable = {
        id: randomUUID(),
        name: 'admin',
        kind: 'user',
        description: 'First administrator, created at first start',
        scopes: '[]',
        disabled: 0,
        created_at: now,
        created_by: null,
      };
      await s.insertActor(actor);
      await s.setActorRoles(actor.id, ['admin']);
      await s.putSetting('bootstrapped_at', String(now));
      const created = await this.insertToken(s, SYSTEM_PRINCIPAL, actor, {
        name: 'bootstrap',
        scopes: BUILTIN_ROLES.admin.scopes,
        lifetimeMs: this.issuance.bootstrapLifetimeMs,
      });
      await this.audit(s, SYSTEM_PRINCIPAL, 'system.bootstrap', 'actor', actor.name, { tokenId: created.token.id, expiresAt: created.token.expiresAt });
      return created;
    });
  }

  /**
   * Break-glass (`tokenwarden admin recover`, run on the host with direct access to the store):
   * re-creates or re-enables the `admin` identity with the admin role and mints a short-lived
   * admin token through the issuance policy. Audited as `system.recover` (never the secret).
   */
  async recover(options: { lifetimeMs: number; by?: string }): Promise<CreatedToken & { actorCreated: boolean; actorEnabled: boolean }> {
    await this.ensureBuiltins();
    const p: Principal = { ...SYSTEM_PRINCIPAL, actorName: options.by ?? 'recover' };
    const result = await this.store.transaction(async (s) => {
      const now = this.clock.now();
      let actor = await s.findActorByName('admin');
      const actorCreated = !actor;
      const actorEnabled = !!actor?.disabled;
      if (!actor) {
        actor = {
          id: randomUUID(),
          name: 'admin',
          kind: 'user',
          description: 'Administrator, re-created by tokenwarden admin recover',
          scopes: '[]',
          disabled: 0,
          created_at: now,
          created_by: null,
        };
        await s.insertActor(actor);
      } else if (actor.disabled) {
        await s.updateActor(actor.id, { disabled: 0 });
        actor = { ...actor, disabled: 0 };
      }
      const roles = await s.rolesOfActor(actor.id);
      if (!roles.includes('admin')) await s.setActorRoles(actor.id, [...roles, 'admin'].sort());
      const created = await this.insertToken(s, p, actor, {
        name: `recover-${new Date(now).toISOString()}`,
        scopes: BUILTIN_ROLES.admin.scopes,
        lifetimeMs: options.lifetimeMs,
      });
      await this.audit(s, p, 'system.recover', 'actor', actor.name, {
        tokenId: created.token.id,
        expiresAt: created.token.expiresAt,
        actorCreated,
        actorEnabled,
      });
      return { ...created, actorCreated, actorEnabled, actorId: actor.id };
    });
    this.events.emit('actor-changed', result.actorId);
    const { actorId: _id, ...out } = result;
    return out;
  }

  // ---- actors ----

  async createActor(
    p: Principal,
    input: { name: string; kind: 'user' | 'service'; description?: string; roles?: string[]; scopes?: string[] },
  ): Promise<ActorView> {
    validateActorName(input.name, input.kind);
    return this.store.transaction(async (s) => {
      if (await s.findActorByName(input.name)) throw problem.conflict(`an identity named "${input.name}" already exists`, 'name');
      await this.checkRolesExist(s, input.roles ?? []);
      await this.checkScopesExist(s, input.scopes ?? [], 'scopes');
      const row: ActorTable = {
        id: randomUUID(),
        name: input.name,
        kind: input.kind,
        description: input.description ?? '',
        scopes: JSON.stringify(uniqueSorted(input.scopes ?? [])),
        disabled: 0,
        created_at: this.clock.now(),
        created_by: p.actorId,
      };
      await s.insertActor(row);
      await s.setActorRoles(row.id, uniqueSorted(input.roles ?? []));
      await this.audit(s, p, 'actor.create', 'actor', row.name, { kind: row.kind, roles: input.roles ?? [], scopes: input.scopes ?? [] });
      return this.actorView(s, row);
    });
  }

  async updateActor(
    p: Principal,
    name: string,
    patch: { description?: string; roles?: string[]; scopes?: string[]; disabled?: boolean },
  ): Promise<ActorView> {
    const view = await this.store.transaction(async (s) => {
      const actor = await this.actorByName(s, name);
      if (patch.roles) {
        await this.checkRolesExist(s, patch.roles);
        await s.setActorRoles(actor.id, uniqueSorted(patch.roles));
      }
      if (patch.scopes) await this.checkScopesExist(s, patch.scopes, 'scopes');
      await s.updateActor(actor.id, {
        ...(patch.description !== undefined ? { description: patch.description } : {}),
        ...(patch.scopes ? { scopes: JSON.stringify(uniqueSorted(patch.scopes)) } : {}),
        ...(patch.disabled !== undefined ? { disabled: patch.disabled ? 1 : 0 } : {}),
      });
      await this.audit(s, p, 'actor.update', 'actor', name, patch);
      return this.actorView(s, (await s.findActorById(actor.id))!);
    });
    this.events.emit('actor-changed', view.id);
    return view;
  }

  /** Removing an identity revokes every token it holds first: no live token is left behind. */
  async deleteActor(p: Principal, name: string): Promise<{ revoked: string[] }> {
    if (name === p.actorName) throw problem.invalid('name', 'you cannot delete the identity you are signed in as');
    const result = await this.store.transaction(async (s) => {
      const actor = await this.actorByName(s, name);
      const own = await s.revokeTokensOfActor(actor.id, this.clock.now(), p.actorName, 'identity deleted');
      const revoked = [...own, ...(await this.revokeDescendants(s, p, own))];
      await s.updateActor(actor.id, { disabled: 1 });
      await this.audit(s, p, 'actor.delete', 'actor', name, { revokedTokens: revoked });
      return { actorId: actor.id, revoked };
    });
    for (const id of result.revoked) this.events.emit('token-revoked', id);
    this.events.emit('actor-changed', result.actorId);
    return { revoked: result.revoked };
  }

  async listActors(p: Principal): Promise<ActorView[]> {
    const [actors, assignments, roles] = await Promise.all([
      this.store.listActors(),
      this.store.roleAssignments(),
      this.store.listRoles(),
    ]);
    const roleScopes = new Map(roles.map((r) => [r.name, parseList(r.scopes)]));
    return actors.map((a) => {
      const actorRoles = assignments.get(a.id) ?? [];
      const effective = new Set(parseList(a.scopes));
      for (const r of actorRoles) for (const sc of roleScopes.get(r) ?? []) effective.add(sc);
      return toActorView(a, actorRoles, [...effective].sort());
    });
  }

  async getActor(p: Principal, name: string): Promise<ActorView> {
    if (name !== p.actorName) this.requireAny(p, [PERMISSIONS.actorManage, PERMISSIONS.adminToken, PERMISSIONS.auditRead]);
    const actor = await this.actorByName(this.store, name);
    return this.actorView(this.store, actor);
  }

  // ---- roles and scopes ----

  async createRole(p: Principal, input: { name: string; description?: string; scopes: string[] }): Promise<RoleView> {
    if (!ROLE_NAME.test(input.name)) {
      throw problem.invalid('name', `role name "${input.name}" is not allowed: use lowercase letters, digits, ".", "_" or "-" (at most 64)`);
    }
    return this.store.transaction(async (s) => {
      if (await s.findRole(input.name)) throw problem.conflict(`a role named "${input.name}" already exists`, 'name');
      await this.checkScopesExist(s, input.scopes, 'scopes');
      const row: RoleTable = {
        name: input.name,
        description: input.description ?? '',
        scopes: JSON.stringify(uniqueSorted(input.scopes)),
        builtin: 0,
        created_at: this.clock.now(),
      };
      await s.insertRole(row);
      await this.audit(s, p, 'role.create', 'role', row.name, { scopes: input.scopes });
      return toRoleView(row);
    });
  }

  async updateRole(p: Principal, name: string, patch: { description?: string; scopes?: string[] }): Promise<RoleView> {
    const view = await this.store.transaction(async (s) => {
      const role = await s.findRole(name);
      if (!role) throw problem.notFound('role', name);
      if (role.builtin) throw problem.invalid('name', `"${name}" is a built-in role and cannot be changed; create your own role instead`);
      if (patch.scopes) await this.checkScopesExist(s, patch.scopes, 'scopes');
      const row = {
        ...role,
        ...(patch.description !== undefined ? { description: patch.description } : {}),
        ...(patch.scopes ? { scopes: JSON.stringify(uniqueSorted(patch.scopes)) } : {}),
      };
      await s.upsertRole(row);
      await this.audit(s, p, 'role.update', 'role', name, patch);
      return toRoleView(row);
    });
    this.events.emit('actor-changed', '*');
    return view;
  }

  async deleteRole(p: Principal, name: string): Promise<void> {
    await this.store.transaction(async (s) => {
      const role = await s.findRole(name);
      if (!role) throw problem.notFound('role', name);
      if (role.builtin) throw problem.invalid('name', `"${name}" is a built-in role and cannot be deleted`);
      await s.deleteRole(name);
      await this.audit(s, p, 'role.delete', 'role', name, {});
    });
    this.events.emit('actor-changed', '*');
  }

  async listRoles(): Promise<RoleView[]> {
    return (await this.store.listRoles()).map(toRoleView);
  }

  async createScope(p: Principal, input: { name: string; description?: string }): Promise<{ name: string; description: string; builtin: boolean }> {
    if (!SCOPE_NAME.test(input.name)) {
      throw problem.invalid('name', `scope name "${input.name}" is not allowed: letters, digits and . _ : - / only, at most 128`);
    }
    return this.store.transaction(async (s) => {
      if ((await s.listScopes()).some((x) => x.name === input.name)) throw problem.conflict(`scope "${input.name}" already exists`, 'name');
      await s.insertScope({ name: input.name, description: input.description ?? '', builtin: 0, created_at: this.clock.now() });
      await this.audit(s, p, 'scope.create', 'scope', input.name, {});
      return { name: input.name, description: input.description ?? '', builtin: false };
    });
  }

  async listScopes(): Promise<{ name: string; description: string; builtin: boolean }[]> {
    return (await this.store.listScopes()).map((x) => ({ name: x.name, description: x.description, builtin: !!x.builtin }));
  }

  // ---- tokens ----

  async createToken(p: Principal, input: CreateTokenInput): Promise<CreatedToken> {
    const targetName = input.actor ?? p.actorName;
    return this.store.transaction(async (s) => {
      const actor = await this.issuance.identity(s, targetName);
      const created = await this.insertToken(s, p, actor, input);
      await this.audit(s, p, 'token.create', 'token', created.token.id, {
        name: created.token.name,
        actor: targetName,
        scopes: created.token.scopes,
        expiresAt: created.token.expiresAt,
        parent: created.token.parent,
        ...(created.expiryCappedBy ? { expiryCappedBy: created.expiryCappedBy } : {}),
        ...(input.bindingId ? { bindingId: input.bindingId } : {}),
      });
      return created;
    });
  }

  /**
   * Mints a successor with the same identity, name and scopes. The old token stays valid for
   * `graceMs` (its expiry is brought forward), or is revoked at once when graceMs is 0.
   */
  async replaceToken(p: Principal, id: string, options: { graceMs?: number; lifetimeMs?: number } = {}): Promise<CreatedToken> {
    const result = await this.store.transaction(async (s) => {
      const old = await this.tokenRow(s, p, id, 'replace');
      if (old.revoked_at !== null) throw problem.conflict(`token ${id} is revoked; create a new token instead`);
      const actor = (await s.findActorById(old.actor_id))!;
      // Who may replace is who may issue for the token's identity: the issuance policy decides (in insertToken).
      const created = await this.insertToken(s, p, actor, {
        name: old.name,
        scopes: parseList(old.scopes),
        lifetimeMs: options.lifetimeMs ?? old.expires_at - old.created_at,
        bindingId: old.binding_id,
        replaces: old.id,
        replacing: old,
      });
      const grace = options.graceMs ?? 0;
      const now = this.clock.now();
      let touched: string[];
      if (grace <= 0) {
        await s.revokeToken(old.id, now, p.actorName, `replaced by ${created.token.id}`);
        touched = [old.id, ...(await this.revokeDescendants(s, p, [old.id]))];
      } else {
        // Its descendants never outlive it: their expiry comes forward with it.
        await s.shortenExpiry(old.id, now + grace);
        const below = await s.liveDescendants([old.id]);
        for (const d of below) await s.shortenExpiry(d.id, now + grace);
        touched = [old.id, ...below.map((d) => d.id)];
      }
      await this.audit(s, p, 'token.replace', 'token', old.id, { successor: created.token.id, graceMs: grace });
      return { created, touched };
    });
    // Revoked or its expiry brought forward: either way cached verifications must be re-read.
    for (const id of result.touched) this.events.emit('token-revoked', id);
    return result.created;
  }

  /** Revokes the token and, in the same transaction, every live token descending from it; each id is announced. */
  async revokeToken(p: Principal, id: string, reason?: string, options: RevokeOptions = {}): Promise<TokenView> {
    const { view, revoked } = await this.store.transaction(async (s) => {
      const row = await this.tokenRow(s, p, id, 'revoke');
      const revoked: string[] = [id];
      if (row.revoked_at === null) {
        if (options.guard && !options.force) await this.guardHandRevoke(s, p, row);
        await s.revokeToken(id, this.clock.now(), p.actorName, reason ?? null);
        const below = await this.revokeDescendants(s, p, [id]);
        revoked.push(...below);
        await this.audit(s, p, 'token.revoke', 'token', id, {
          name: row.name,
          ...(reason ? { reason } : {}),
          ...(below.length ? { descendants: below } : {}),
          ...(options.force ? { forced: true } : {}),
        });
      }
      return { view: await this.tokenView(s, (await s.findToken(id))!), revoked };
    });
    for (const r of revoked) this.events.emit('token-revoked', r);
    return view;
  }

  /** A person revoking a token a binding delivers, or the one they are signed in with, is asked to confirm (force). */
  private async guardHandRevoke(s: Store, p: Principal, row: TokenTable): Promise<void> {
    if (row.binding_id) {
      const binding = await new BindingQueries(s).byId(row.binding_id);
      if (binding && binding.state !== 'removing') {
        throw problem.conflict(
          `token ${row.id} is delivered by binding ${binding.name}; revoking it breaks its consumer until the binding heals — use \`tokenwarden binding rotate ${binding.name}\`, or repeat with --force (API: "force": true)`,
          'force',
        );
      }
    }
    if (row.id === p.tokenId) {
      throw problem.conflict(`token ${row.id} is the token you are signed in with; revoking it ends your access at once — repeat with --force (API: "force": true)`, 'force');
    }
  }

  /** Revokes every live descendant of `ids` (the lineage of parent tokens); returns their ids. */
  private async revokeDescendants(s: Store, p: Principal, ids: string[]): Promise<string[]> {
    if (!ids.length) return [];
    const below = await s.liveDescendants(ids);
    const now = this.clock.now();
    for (const d of below) await s.revokeToken(d.id, now, p.actorName, 'its parent token was revoked');
    return below.map((d) => d.id);
  }

  async getToken(p: Principal, id: string): Promise<TokenView> {
    const row = await this.tokenRow(this.store, p, id, 'read');
    return this.tokenView(this.store, row);
  }

  async listTokens(
    p: Principal,
    filter: { actor?: string; state?: TokenState; search?: string; bindingId?: string; limit?: number } = {},
  ): Promise<TokenView[]> {
    let actorId: string | undefined;
    if (filter.actor) actorId = (await this.actorByName(this.store, filter.actor, 'actor')).id;
    if (!this.holds(p, PERMISSIONS.adminToken) && !this.holds(p, PERMISSIONS.auditRead)) {
      if (actorId && actorId !== p.actorId) this.require(p, PERMISSIONS.adminToken, "to list another identity's tokens");
      actorId = p.actorId;
    }
    const rows = await this.store.listTokens({ ...filter, actorId, now: this.clock.now() });
    const names = new Map((await this.store.listActors()).map((a) => [a.id, a.name]));
    return rows.map((r) => toTokenView(r, names.get(r.actor_id) ?? r.actor_id, this.clock.now()));
  }

  /**
   * Tokens not used for `days`, one page at a time (the one definition: store/observe.ts
   * unusedTokens). A caller without admin:token or audit.read sees only its own identity's.
   */
  async unusedTokens(
    p: Principal,
    days: number,
    options: { includeManaged?: boolean; limit?: number; cursor?: string } = {},
  ): Promise<{ items: TokenView[]; next: string | null }> {
    const now = this.clock.now();
    const limit = options.limit ?? 100;
    const own = !this.holds(p, PERMISSIONS.adminToken) && !this.holds(p, PERMISSIONS.auditRead);
    const rows = await unusedTokens(this.store, {
      now,
      cutoff: now - days * 86_400_000,
      includeManaged: options.includeManaged ?? false,
      ...(own ? { actorId: p.actorId } : {}),
      ...(options.cursor ? { after: decodeCursor(options.cursor) } : {}),
      limit,
    });
    const last = rows.at(-1);
    return {
      items: rows.map((r) => toTokenView(r, r.actor_name, now)),
      next: rows.length === limit && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : null,
    };
  }

  // ---- audit ----

  async listAudit(p: Principal, filter: AuditFilter): Promise<AuditView[]> {
    return (await this.store.listAudit(filter)).map(toAuditView);
  }

  /** For events that are not a change made through this service (a sign-in, a controller step). */
  async record(p: Principal, action: string, targetType: string, targetId: string | null, detail: Record<string, unknown>): Promise<void> {
    await this.audit(this.store, p, action, targetType, targetId, detail);
  }

  // ---- rules ----

  holds(p: Principal, scope: string): boolean {
    return holds(p, scope);
  }

  require(p: Principal, scope: string, why = 'for this operation'): void {
    if (!this.holds(p, scope)) throw problem.forbidden(`the scope "${scope}" is needed ${why}; your token does not hold it`);
  }

  requireAny(p: Principal, scopes: string[]): void {
    if (!scopes.some((sc) => this.holds(p, sc))) {
      throw problem.forbidden(`one of the scopes ${scopes.map((x) => `"${x}"`).join(', ')} is needed; your token holds none of them`);
    }
  }

  /** Mints a token as the issuance policy decides (which identity, scopes, lifetime, parent) and stores its hash. */
  private async insertToken(
    s: Store,
    p: Principal,
    actor: ActorTable,
    input: CreateTokenInput & { replaces?: string; replacing?: TokenTable },
    fields: IssueFields = TOKEN_FIELDS,
  ): Promise<CreatedToken> {
    const name = (input.name ?? '').trim();
    const decision = await this.issuance.decide(s, p, actor, input, fields);
    if (!name || name.length > 200) throw problem.invalid('name', 'a token needs a name of 1 to 200 characters, e.g. "prometheus-scrape"');
    // The instant the lifetime was measured from: created_at and expires_at are exactly the lifetime apart.
    const now = decision.issuedAt;
    if (!input.replaces && (await s.liveTokenNamed(actor.id, name, now))) {
      throw problem.conflict(`identity "${actor.name}" already has a live token named "${name}"; pick another name, or replace that token`, 'name');
    }
    const minted = mintToken();
    const row: TokenTable = {
      id: minted.id,
      actor_id: actor.id,
      name,
      scopes: JSON.stringify(decision.scopes),
      secret_hash: minted.secretHash,
      created_at: now,
      created_by: p.actorName,
      expires_at: decision.expiresAt,
      revoked_at: null,
      revoked_by: null,
      revoke_reason: null,
      replaces: input.replaces ?? null,
      parent: decision.parent,
      binding_id: input.bindingId ?? null,
      last_used_at: null,
      last_used_ip: null,
      last_used_agent: null,
    };
    await s.insertToken(row);
    return { token: toTokenView(row, actor.name, now), plaintext: minted.plaintext, expiryCappedBy: decision.cappedBy };
  }

  private async tokenRow(s: Store, p: Principal, id: string, action: 'read' | 'revoke' | 'replace'): Promise<TokenTable> {
    const row = await s.findToken(id);
    if (!row) throw problem.notFound('token', id);
    if (row.actor_id !== p.actorId) {
      if (action === 'read') this.requireAny(p, [PERMISSIONS.adminToken, PERMISSIONS.auditRead]);
      else if (action === 'revoke') this.require(p, PERMISSIONS.adminToken, `to ${action} a token of another identity`);
      // replace: whoever may issue for that identity (issuance policy, in insertToken)
    }
    return row;
  }

  private async actorByName(s: Store, name: string, field = 'name'): Promise<ActorTable> {
    const actor = await s.findActorByName(name);
    if (!actor) throw new Problem('not-found', `identity "${name}" does not exist; create it first (tokenwarden actor create ${name})`, { field });
    return actor;
  }

  private async checkScopesExist(s: Store, scopes: string[], field: string): Promise<void> {
    const known = new Set((await s.listScopes()).map((x) => x.name));
    const unknown = scopes.filter((sc) => !known.has(sc));
    if (unknown.length) {
      throw problem.invalid(field, `unknown scope ${list(unknown)}; define it first (tokenwarden scope create ${unknown[0]}) or check the spelling`);
    }
  }

  private async checkRolesExist(s: Store, roles: string[]): Promise<void> {
    const known = new Set((await s.listRoles()).map((r) => r.name));
    const unknown = roles.filter((r) => !known.has(r));
    if (unknown.length) throw problem.invalid('roles', `unknown role ${list(unknown)}; see tokenwarden role list`);
  }

  private async actorView(s: Store, a: ActorTable): Promise<ActorView> {
    return toActorView(a, await s.rolesOfActor(a.id), await s.scopesOfActor(a.id));
  }

  async tokenView(s: Store, row: TokenTable): Promise<TokenView> {
    const actor = await s.findActorById(row.actor_id);
    return toTokenView(row, actor?.name ?? row.actor_id, this.clock.now());
  }

  private async audit(s: Store, p: Principal, action: string, targetType: string, targetId: string | null, detail: object): Promise<void> {
    await s.appendAudit({
      at: this.clock.now(),
      actor_id: p.actorId,
      actor_name: p.actorName,
      token_id: p.tokenId,
      action,
      target_type: targetType,
      target_id: targetId,
      detail: JSON.stringify(detail),
      source_ip: p.ip ?? null,
      request_id: p.requestId ?? null,
    });
  }
}

function encodeCursor(c: UnusedCursor): string {
  return Buffer.from(`${c.createdAt}:${c.id}`).toString('base64url');
}

function decodeCursor(cursor: string): UnusedCursor {
  const m = /^(\d{1,16}):([0-9A-Za-z]{1,64})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw problem.invalid('cursor', 'the cursor is not one this server handed out; start again without it');
  return { createdAt: Number(m[1]), id: m[2]! };
}

function uniqueSorted(values: string[]): string[] {
  return [...new Set(values)].sort();
}

function list(values: string[]): string {
  return values.map((v) => `"${v}"`).join(', ');
}
