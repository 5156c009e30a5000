import type { Static } from '@sinclair/typebox';
import { Type as T } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { CreatedToken as Created } from '../../authority/authority.js';
import { parseDuration } from '../../clock.js';
import { problem } from '../../errors.js';
import type { AppContext } from '../context.js';
import * as S from '../schemas.js';

const errors = { 400: S.Problem, 401: S.Problem, 403: S.Problem, 404: S.Problem, 409: S.Problem };

export function durationField(field: string, value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) throw problem.invalid(field, `${field} must be a positive duration such as "30d", "12h" or "900s"`);
  return ms;
}

function timestampField(field: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw problem.invalid(field, `${field} must be an RFC 3339 date-time such as "2027-01-31T00:00:00Z"`);
  return ms;
}

const created = (c: Created) => ({ token: c.plaintext, ...(c.expiryCappedBy ? { expiryCappedBy: c.expiryCappedBy } : {}), ...c.token });

export function registerTokenRoutes(api: FastifyInstance, ctx: AppContext): void {
  const { authority } = ctx;

  api.post<{ Body: Static<typeof S.CreateTokenBody> }>(
    '/tokens',
    { schema: { tags: ['tokens'], summary: 'Mint a token (the secret is returned once)', body: S.CreateTokenBody, response: { 201: S.CreatedToken, ...errors } } },
    async (req, reply) => {
      const b = req.body;
      if (b.expiresIn !== undefined && b.expiresAt !== undefined) throw problem.invalid('expiresIn', 'give expiresIn or expiresAt, not both');
      const result = await authority.createToken(req.principal, {
        actor: b.actor,
        name: b.name,
        scopes: b.scopes,
        lifetimeMs: durationField('expiresIn', b.expiresIn),
        expiresAt: timestampField('expiresAt', b.expiresAt),
      });
      reply.code(201).header('cache-control', 'no-store');
      return created(result);
    },
  );

  api.get<{ Querystring: Static<typeof S.TokenQuery> }>(
    '/tokens',
    { schema: { tags: ['tokens'], summary: 'List tokens (never their secrets)', querystring: S.TokenQuery, response: { 200: T.Object({ items: T.Array(S.TokenView) }), ...errors } } },
    async (req) => ({ items: await authority.listTokens(req.principal, req.query) }),
  );

  api.get<{ Querystring: { days?: number; includeManaged?: boolean; limit?: number; cursor?: string } }>(
    '/tokens/unused',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Live tokens not used for N days (never-used ones count from creation)',
        querystring: T.Object({
          days: T.Optional(T.Integer({ minimum: 0, maximum: 3650, default: 30 })),
          includeManaged: T.Optional(T.Boolean({ description: 'also list tokens that a binding delivers and rotates' })),
          limit: T.Optional(T.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'page size; oldest first' })),
          cursor: T.Optional(T.String({ maxLength: 200, description: 'the `next` of the previous page' })),
        }),
        response: {
          200: T.Object({ days: T.Integer(), items: T.Array(S.TokenView), next: T.Union([T.String(), T.Null()], { description: 'cursor of the next page; null on the last' }) }),
          ...errors,
        },
      },
    },
    async (req) => {
      const days = req.query.days ?? 30;
      const { includeManaged, limit, cursor } = req.query;
      return { days, ...(await authority.unusedTokens(req.principal, days, { includeManaged, limit, cursor })) };
    },
  );

  api.get<{ Params: Static<typeof S.IdParam> }>(
    '/tokens/:id',
    { schema: { tags: ['tokens'], summary: 'Show one token', params: S.IdParam, response: { 200: S.TokenView, ...errors } } },
    async (req) => authority.getToken(req.principal, req.params.id),
  );

  // A revocation by hand: a token a binding delivers, or the caller's own, needs force (authority.revokeToken's guard).
  const revoke = async (req: { principal: any; params: { id: string }; body?: { reason?: string; force?: boolean }; query?: { force?: boolean } }) =>
    authority.revokeToken(req.principal, req.params.id, req.body?.reason, { guard: true, force: req.body?.force === true || req.query?.force === true });
  api.delete<{ Params: Static<typeof S.IdParam>; Querystring: Static<typeof S.RevokeQuery>; Body: Static<typeof S.RevokeBody> }>(
    '/tokens/:id',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Revoke a token (and every token it minted); 409 for a token a binding delivers or your own, unless ?force=true',
        params: S.IdParam,
        querystring: S.RevokeQuery,
        response: { 200: S.TokenView, ...errors },
      },
    },
    revoke,
  );
  api.post<{ Params: Static<typeof S.IdParam>; Querystring: Static<typeof S.RevokeQuery>; Body: Static<typeof S.RevokeBody> }>(
    '/tokens/:id/revoke',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Revoke a token (and every token it minted), with a reason; 409 for a token a binding delivers or your own, unless "force": true',
        params: S.IdParam,
        querystring: S.RevokeQuery,
        body: T.Optional(S.RevokeBody),
        response: { 200: S.TokenView, ...errors },
      },
    },
    revoke,
  );

  api.post<{ Params: Static<typeof S.IdParam>; Body: Static<typeof S.ReplaceTokenBody> }>(
    '/tokens/:id/replace',
    {
      schema: {
        tags: ['tokens'],
        summary: 'Mint a successor with the same identity, name and scopes; the old one is revoked at once or after a grace period',
        params: S.IdParam,
        body: T.Optional(S.ReplaceTokenBody),
        response: { 201: S.CreatedToken, ...errors },
      },
    },
    async (req, reply) => {
      const result = await authority.replaceToken(req.principal, req.params.id, {
        graceMs: req.body?.grace === undefined ? 0 : parseDuration(req.body.grace),
        lifetimeMs: durationField('expiresIn', req.body?.expiresIn),
      });
      reply.code(201).header('cache-control', 'no-store');
      return created(result);
    },
  );
}
