import type { Static } from '@sinclair/typebox';
import { Type as T } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import * as S from '../schemas.js';

const errors = { 400: S.Problem, 401: S.Problem, 403: S.Problem, 404: S.Problem, 409: S.Problem };

/** Identities, roles, scopes, audit and introspection. */
export function registerAdminRoutes(api: FastifyInstance, ctx: AppContext): void {
  const { authority } = ctx;

  api.get(
    '/whoami',
    {
      schema: {
        tags: ['identities'],
        summary: 'The identity and scopes of the calling token',
        response: { 200: T.Object({ actor: T.String(), tokenId: T.Union([T.String(), T.Null()]), scopes: T.Array(T.String()) }) },
      },
    },
    async (req) => ({ actor: req.principal.actorName, tokenId: req.principal.tokenId, scopes: [...req.principal.scopes] }),
  );

  api.get('/actors', { schema: { tags: ['identities'], response: { 200: T.Object({ items: T.Array(S.ActorView) }), ...errors } } }, async (req) => ({
    items: await authority.listActors(req.principal),
  }));
  api.post<{ Body: Static<typeof S.CreateActorBody> }>(
    '/actors',
    { schema: { tags: ['identities'], summary: 'Create a user or a bot- service identity', body: S.CreateActorBody, response: { 201: S.ActorView, ...errors } } },
    async (req, reply) => {
      reply.code(201);
      return authority.createActor(req.principal, req.body);
    },
  );
  api.get<{ Params: Static<typeof S.NameParam> }>(
    '/actors/:name',
    { schema: { tags: ['identities'], params: S.NameParam, response: { 200: S.ActorView, ...errors } } },
    async (req) => authority.getActor(req.principal, req.params.name),
  );
  api.patch<{ Params: Static<typeof S.NameParam>; Body: Static<typeof S.UpdateActorBody> }>(
    '/actors/:name',
    { schema: { tags: ['identities'], summary: 'Change roles, scopes, description or disable', params: S.NameParam, body: S.UpdateActorBody, response: { 200: S.ActorView, ...errors } } },
    async (req) => authority.updateActor(req.principal, req.params.name, req.body),
  );
  api.delete<{ Params: Static<typeof S.NameParam> }>(
    '/actors/:name',
    {
      schema: {
        tags: ['identities'],
        summary: 'Delete (disable) an identity and revoke all its tokens',
        params: S.NameParam,
        response: { 200: T.Object({ revoked: T.Array(T.String()) }), ...errors },
      },
    },
    async (req) => authority.deleteActor(req.principal, req.params.name),
  );

  api.get('/roles', { schema: { tags: ['roles'], response: { 200: T.Object({ items: T.Array(S.RoleView) }) } } }, async () => ({
    items: await authority.listRoles(),
  }));
  api.post<{ Body: Static<typeof S.CreateRoleBody> }>(
    '/roles',
    { schema: { tags: ['roles'], body: S.CreateRoleBody, response: { 201: S.RoleView, ...errors } } },
    async (req, reply) => {
      reply.code(201);
      return authority.createRole(req.principal, req.body);
    },
  );
  api.patch<{ Params: Static<typeof S.NameParam>; Body: Static<typeof S.UpdateRoleBody> }>(
    '/roles/:name',
    { schema: { tags: ['roles'], params: S.NameParam, body: S.UpdateRoleBody, response: { 200: S.RoleView, ...errors } } },
    async (req) => authority.updateRole(req.principal, req.params.name, req.body),
  );
  api.delete<{ Params: Static<typeof S.NameParam> }>(
    '/roles/:name',
    { schema: { tags: ['roles'], params: S.NameParam, response: { 204: T.Null(), ...errors } } },
    async (req, reply) => {
      await authority.deleteRole(req.principal, req.params.name);
      reply.code(204).send();
    },
  );

  api.get('/scopes', { schema: { tags: ['roles'], response: { 200: T.Object({ items: T.Array(S.ScopeView) }) } } }, async () => ({
    items: await authority.listScopes(),
  }));
  api.post<{ Body: Static<typeof S.CreateScopeBody> }>(
    '/scopes',
    { schema: { tags: ['roles'], summary: 'Define a scope of your own, e.g. write:sasquatch', body: S.CreateScopeBody, response: { 201: S.ScopeView, ...errors } } },
    async (req, reply) => {
      reply.code(201);
      return authority.createScope(req.principal, req.body);
    },
  );

  api.get<{ Querystring: Static<typeof S.AuditQuery> }>(
    '/audit',
    { schema: { tags: ['audit'], summary: 'The audit log, newest first', querystring: S.AuditQuery, response: { 200: T.Object({ items: T.Array(S.AuditView) }), ...errors } } },
    async (req) => {
      const q = req.query;
      return {
        items: await authority.listAudit(req.principal, {
          actorName: q.actor,
          action: q.action,
          targetId: q.target,
          since: q.since ? Date.parse(q.since) : undefined,
          until: q.until ? Date.parse(q.until) : undefined,
          limit: q.limit,
          beforeSeq: q.before,
        }),
      };
    },
  );

  // RFC 7662. Accepts a form body (the RFC's encoding) or JSON.
  api.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  api.post<{ Body: Static<typeof S.IntrospectBody> }>(
    '/introspect',
    { schema: { tags: ['verification'], summary: 'RFC 7662 token introspection (needs token.introspect)', body: S.IntrospectBody, response: { 200: S.IntrospectResponse, ...errors } } },
    async (req) => {
      const v = await ctx.verifier.inspect(req.body.token);
      if (!v.ok) return { active: false };
      const id = v.identity;
      return {
        active: true,
        scope: id.scopes.join(' '),
        sub: id.actorName,
        username: id.actorName,
        client_id: id.actorName,
        token_type: 'Bearer',
        exp: Math.floor(id.expiresAt / 1000),
        iat: Math.floor(id.issuedAt / 1000),
        jti: id.tokenId,
      };
    },
  );
}
