import { type TSchema, Type as T } from '@sinclair/typebox';
import { Duration } from '../config/server-config.js';

/** The API's shapes: they validate requests, type handlers and generate the OpenAPI document. */
const Nullable = <S extends TSchema>(s: S) => T.Union([s, T.Null()]);
const ScopeList = T.Array(T.String({ minLength: 1, maxLength: 128 }), { maxItems: 100 });

export const Problem = T.Object(
  {
    type: T.String(),
    title: T.String(),
    status: T.Integer(),
    detail: T.String(),
    instance: T.Optional(T.String()),
    field: T.Optional(T.String()),
    errors: T.Optional(T.Array(T.Object({ field: T.String(), message: T.String() }))),
  },
  { description: 'RFC 9457 problem details' },
);

export const TokenView = T.Object(
  {
    id: T.String({ description: 'public lookup id; safe to log' }),
    name: T.String(),
    actor: T.String(),
    actorId: T.String(),
    scopes: T.Array(T.String()),
    state: T.Union([T.Literal('active'), T.Literal('expired'), T.Literal('revoked')]),
    createdAt: T.String({ format: 'date-time' }),
    createdBy: Nullable(T.String()),
    expiresAt: T.String({ format: 'date-time' }),
    revokedAt: Nullable(T.String()),
    revokedBy: Nullable(T.String()),
    revokeReason: Nullable(T.String()),
    replaces: Nullable(T.String()),
    parent: Nullable(
      T.String({
        description:
          'the token that minted this one (its caller did not hold admin:token): this token never expires after it (a longer expiry asked for is capped) and is revoked with it; null: it stands alone',
      }),
    ),
    bindingId: Nullable(T.String()),
    lastUsed: Nullable(T.Object({ at: T.String(), ip: Nullable(T.String()), userAgent: Nullable(T.String()) })),
  },

);

export const CreatedToken = T.Composite([
  T.Object({
    token: T.String({ description: 'the bearer token; shown exactly once, never again' }),
    expiryCappedBy: T.Optional(
      T.String({ description: "set when the expiry asked for was later than the parent token's: the expiry was brought forward to the parent's, whose id this is" }),
    ),
  }),
  TokenView,
]);

export const CreateTokenBody = T.Object(
  {
    actor: T.Optional(T.String({ description: 'identity to issue for; default: yourself. Others need admin:token' })),
    name: T.String({ minLength: 1, maxLength: 200 }),
    scopes: ScopeList,
    expiresIn: T.Optional(Duration),
    expiresAt: T.Optional(T.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);

export const ReplaceTokenBody = T.Object(
  {
    grace: T.Optional(Duration),
    expiresIn: T.Optional(Duration),
  },
  { additionalProperties: false },
);

export const RevokeBody = T.Object(
  {
    reason: T.Optional(T.String({ maxLength: 500 })),
    force: T.Optional(
      T.Boolean({ description: 'revoke even a token that a binding delivers, or the one you are signed in with (otherwise refused with 409 naming why)' }),
    ),
  },
  { additionalProperties: false },
);

export const RevokeQuery = T.Object({ force: T.Optional(T.Boolean({ description: 'as the body\'s "force"' })) }, { additionalProperties: false });

export const TokenQuery = T.Object(
  {
    actor: T.Optional(T.String()),
    state: T.Optional(T.Union([T.Literal('active'), T.Literal('expired'), T.Literal('revoked')])),
    search: T.Optional(T.String({ maxLength: 200 })),
    limit: T.Optional(T.Integer({ minimum: 1, maximum: 10000 })),
  },
  { additionalProperties: false },
);

export const ActorView = T.Object(
  {
    id: T.String(),
    name: T.String(),
    kind: T.Union([T.Literal('user'), T.Literal('service')]),
    description: T.String(),
    roles: T.Array(T.String()),
    scopes: T.Array(T.String()),
    effectiveScopes: T.Array(T.String()),
    disabled: T.Boolean(),
    createdAt: T.String(),
  },

);

export const CreateActorBody = T.Object(
  {
    name: T.String({ minLength: 1, maxLength: 128, description: 'service identities must start with "bot-"' }),
    kind: T.Union([T.Literal('user'), T.Literal('service')], { default: 'service' }),
    description: T.Optional(T.String({ maxLength: 500 })),
    roles: T.Optional(T.Array(T.String(), { maxItems: 50 })),
    scopes: T.Optional(ScopeList),
  },
  { additionalProperties: false },
);

export const UpdateActorBody = T.Object(
  {
    description: T.Optional(T.String({ maxLength: 500 })),
    roles: T.Optional(T.Array(T.String(), { maxItems: 50 })),
    scopes: T.Optional(ScopeList),
    disabled: T.Optional(T.Boolean()),
  },
  { additionalProperties: false },
);

export const RoleView = T.Object(
  { name: T.String(), description: T.String(), scopes: T.Array(T.String()), builtin: T.Boolean() },

);
export const CreateRoleBody = T.Object(
  { name: T.String({ minLength: 1, maxLength: 64 }), description: T.Optional(T.String({ maxLength: 500 })), scopes: ScopeList },
  { additionalProperties: false },
);
export const UpdateRoleBody = T.Object(
  { description: T.Optional(T.String({ maxLength: 500 })), scopes: T.Optional(ScopeList) },
  { additionalProperties: false },
);
export const ScopeView = T.Object({ name: T.String(), description: T.String(), builtin: T.Boolean() });
export const CreateScopeBody = T.Object(
  { name: T.String({ minLength: 1, maxLength: 128 }), description: T.Optional(T.String({ maxLength: 500 })) },
  { additionalProperties: false },
);

export const AuditView = T.Object(
  {
    seq: T.Integer(),
    at: T.String(),
    actor: Nullable(T.String()),
    tokenId: Nullable(T.String()),
    action: T.String(),
    targetType: T.String(),
    targetId: Nullable(T.String()),
    detail: T.Record(T.String(), T.Unknown()),
    sourceIp: Nullable(T.String()),
    requestId: Nullable(T.String()),
  },

);
export const AuditQuery = T.Object(
  {
    actor: T.Optional(T.String()),
    action: T.Optional(T.String()),
    target: T.Optional(T.String()),
    since: T.Optional(T.String({ format: 'date-time' })),
    until: T.Optional(T.String({ format: 'date-time' })),
    limit: T.Optional(T.Integer({ minimum: 1, maximum: 5000 })),
    before: T.Optional(T.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);

export const IntrospectBody = T.Object({ token: T.String({ maxLength: 4096 }), token_type_hint: T.Optional(T.String()) });
export const IntrospectResponse = T.Object(
  {
    active: T.Boolean(),
    scope: T.Optional(T.String()),
    sub: T.Optional(T.String()),
    username: T.Optional(T.String()),
    client_id: T.Optional(T.String()),
    token_type: T.Optional(T.String()),
    exp: T.Optional(T.Integer()),
    iat: T.Optional(T.Integer()),
    jti: T.Optional(T.String()),
  },

);

export const NameParam = T.Object({ name: T.String() });
export const IdParam = T.Object({ id: T.String() });
