import { DEFAULT_BOOTSTRAP_LIFETIME_MS } from '../config/server-config.js';
import type { Clock } from '../clock.js';
import { Problem, problem } from '../errors.js';
import type { ActorTable, TokenTable } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { ACTOR_NAME, PERMISSIONS, SERVICE_PREFIX } from './catalogue.js';

/**
 * The one issuance policy. Every path that yields a live token asks it: POST /tokens, replace,
 * a binding's creation (checked up front) and every mint of its controller, the agent (through
 * POST /tokens), the bootstrap token and `admin recover`. It decides
 *
 * - which identity: the caller's own; any identity with `admin:token`; a service identity
 *   (`bot-…`) with `token.issue.service`. `p` null is the configuration file, written by whoever
 *   runs the host: trusted as the host owner for the identity and the caller's scopes;
 * - which scopes: those the identity is granted, and (unless the caller holds `admin:token`)
 *   those the caller's own token holds;
 * - which lifetime: at most `tokens.maxLifetime`, in the future;
 * - which parent: a token minted by a token of a caller without `admin:token` records it as
 *   its parent; its expiry is capped (silently, reported as `cappedBy`) at the parent's, and
 *   revoking the parent revokes it. Tokens of `admin:token` holders and of bindings stand alone.
 *
 * A refusal is the same problem (type, status, field, detail) whichever path asked.
 */

/** Who is asking, established by the verifier from a bearer token (or `system` for the controller). */
export interface Principal {
  actorId: string;
  actorName: string;
  tokenId: string | null;
  scopes: readonly string[];
  ip?: string | null;
  requestId?: string | null;
}

export interface TokenPolicy {
  maxLifetimeMs: number;
  defaultLifetimeMs: number;
  /** The first admin token's lifetime (`tokens.bootstrapLifetime`, default 24 h). */
  bootstrapLifetimeMs?: number;
}

/** The request's own names for the fields the policy may refuse (a binding says `lifetime`, POST /tokens `expiresIn`). */
export interface IssueFields {
  actor: string;
  scopes: string;
  lifetime: string;
}

export const TOKEN_FIELDS: IssueFields = { actor: 'actor', scopes: 'scopes', lifetime: 'expiresIn' };
export const BINDING_FIELDS: IssueFields = { actor: 'actor', scopes: 'scopes', lifetime: 'lifetime' };

export interface IssueRequest {
  scopes: string[];
  /** Lifetime from now; or an absolute expiry. Neither: the policy default. */
  lifetimeMs?: number;
  expiresAt?: number;
  /** A binding's token stands alone: no parent, whoever asked. */
  bindingId?: string | null;
  /** The token being replaced: when it is the caller's own token, its successor takes its place in the lineage. */
  replacing?: Pick<TokenTable, 'id' | 'parent'> | null;
}

export interface Issuance {
  scopes: string[];
  /** The instant the lifetime is measured from: the token's created_at. */
  issuedAt: number;
  expiresAt: number;
  parent: string | null;
  /** Set when the expiry asked for was brought forward to the parent's: that parent's id. */
  cappedBy: string | null;
}

export function holds(p: Pick<Principal, 'scopes'>, scope: string): boolean {
  return p.scopes.includes(scope);
}

/** The `bot-` rule: a service identity is of kind service and named `bot-…` (validateActorName keeps the two together). */
export function isServiceIdentity(actor: Pick<ActorTable, 'kind' | 'name'>): boolean {
  return actor.kind === 'service' && actor.name.startsWith(SERVICE_PREFIX);
}

export function validateActorName(name: string, kind: 'user' | 'service'): void {
  if (!ACTOR_NAME.test(name ?? '')) {
    throw problem.invalid('name', `"${name}" is not a valid identity name: lowercase letters, digits, ".", "_", "@" and "-", starting with a letter or digit`);
  }
  if (kind === 'service' && !name.startsWith(SERVICE_PREFIX)) {
    throw problem.invalid('name', `a service identity's name must start with "${SERVICE_PREFIX}", e.g. "${SERVICE_PREFIX}${name}"`);
  }
  if (kind === 'user' && name.startsWith(SERVICE_PREFIX)) {
    throw problem.invalid('name', `names starting with "${SERVICE_PREFIX}" are reserved for service identities; use kind "service"`);
  }
}

export class IssuancePolicy {
  constructor(
    readonly limits: TokenPolicy,
    private readonly clock: Clock,
  ) {}

  get bootstrapLifetimeMs(): number {
    return this.limits.bootstrapLifetimeMs ?? Math.min(DEFAULT_BOOTSTRAP_LIFETIME_MS, this.limits.maxLifetimeMs);
  }

  /** The identity a token is asked for; unknown or disabled ones are refused naming the field. */
  async identity(s: Store, name: string, fields: IssueFields = TOKEN_FIELDS): Promise<ActorTable> {
    const actor = await s.findActorByName(name);
    if (!actor) throw problem.invalid(fields.actor, `identity "${name}" does not exist; create it first (tokenwarden actor create ${name} --role …)`);
    if (actor.disabled) throw problem.invalid(fields.actor, `identity "${name}" is disabled or deleted; no token can be issued for it`);
    return actor;
  }

  /** Whether `p` may have a token issued for `actor` at all (null: the configuration file, trusted). */
  mayIssueFor(p: Principal | null, actor: Pick<ActorTable, 'id' | 'kind' | 'name'>): boolean {
    if (p === null || actor.id === p.actorId || holds(p, PERMISSIONS.adminToken)) return true;
    return holds(p, PERMISSIONS.issueService) && isServiceIdentity(actor);
  }

  checkIdentity(p: Principal | null, actor: Pick<ActorTable, 'id' | 'kind' | 'name'>, fields: IssueFields = TOKEN_FIELDS): void {
    if (this.mayIssueFor(p, actor)) return;
    const bots = isServiceIdentity(actor)
      ? `"${PERMISSIONS.issueService}" (service identities) or "${PERMISSIONS.adminToken}"`
      : `"${PERMISSIONS.adminToken}" ("${PERMISSIONS.issueService}" covers ${SERVICE_PREFIX}… service identities only)`;
    throw new Problem('forbidden', `issuing a token for identity "${actor.name}" needs ${bots}; your token holds neither. Ask for a token of your own identity, or ask an admin`, {
      field: fields.actor,
    });
  }

  /**
   * Everything about a token to be issued, or the refusal: identity, scopes, lifetime, parent.
   * Reads only; the caller writes the row in the same transaction.
   */
  async decide(s: Store, p: Principal | null, actor: ActorTable, req: IssueRequest, fields: IssueFields = TOKEN_FIELDS): Promise<Issuance> {
    if (actor.disabled) throw problem.invalid(fields.actor, `identity "${actor.name}" is disabled or deleted; no token can be issued for it`);
    this.checkIdentity(p, actor, fields);
    const scopes = [...new Set(req.scopes ?? [])].sort();
    if (!scopes.length) throw problem.invalid(fields.scopes, 'a token needs at least one scope, e.g. "metrics.read"');
    const known = new Set((await s.listScopes()).map((x) => x.name));
    const unknown = scopes.filter((sc) => !known.has(sc));
    if (unknown.length) {
      throw problem.invalid(fields.scopes, `unknown scope ${list(unknown)}; define it first (tokenwarden scope create ${unknown[0]}) or check the spelling`);
    }
    const granted = new Set(await s.scopesOfActor(actor.id));
    const ungranted = scopes.filter((sc) => !granted.has(sc));
    if (ungranted.length) {
      throw problem.invalid(
        fields.scopes,
        `identity "${actor.name}" is not granted ${list(ungranted)}; grant it a role holding ${ungranted.length > 1 ? 'them' : 'it'} (tokenwarden actor update ${actor.name} --role …) or ask for fewer scopes`,
      );
    }
    const admin = p === null || holds(p, PERMISSIONS.adminToken);
    if (!admin) {
      const beyond = scopes.filter((sc) => !p.scopes.includes(sc));
      if (beyond.length) {
        throw new Problem('forbidden', `your token does not hold ${list(beyond)}; a new token may only carry scopes your own token holds unless you hold "${PERMISSIONS.adminToken}"`, {
          field: fields.scopes,
        });
      }
    }
    const now = this.clock.now();
    let expiresAt = req.expiresAt ?? now + (req.lifetimeMs ?? this.limits.defaultLifetimeMs);
    if (!Number.isFinite(expiresAt) || expiresAt <= now) throw problem.invalid(fields.lifetime, 'the expiry must be in the future');
    this.checkLifetime(expiresAt - now, fields.lifetime);
    let parent: string | null = null;
    let cappedBy: string | null = null;
    if (!admin && !req.bindingId && p.tokenId) {
      // A token replacing the caller's own token takes its place under the same parent (or none).
      parent = req.replacing && req.replacing.id === p.tokenId ? req.replacing.parent : p.tokenId;
      if (parent) {
        const row = await s.findToken(parent);
        if (!row || row.revoked_at !== null || row.expires_at <= now) {
          throw problem.unauthorized(`the token ${parent} this one would descend from is no longer valid; sign in again`);
        }
        if (expiresAt > row.expires_at) {
          expiresAt = row.expires_at;
          cappedBy = row.id;
        }
      }
    }
    return { scopes, issuedAt: now, expiresAt, parent, cappedBy };
  }

  /** The one maximum-lifetime comparison. */
  checkLifetime(lifetimeMs: number, field: string): void {
    if (lifetimeMs > this.limits.maxLifetimeMs) {
      throw problem.invalid(field, `the lifetime is beyond the maximum token lifetime of ${describeMax(this.limits.maxLifetimeMs)} (tokens.maxLifetime); ask for a shorter one`);
    }
  }
}

function describeMax(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} days`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} hours`;
  return `${Math.round(ms / 1000)} seconds`;
}

function list(values: string[]): string {
  return values.map((v) => `"${v}"`).join(', ');
}
