import { type Static, Type as T } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../http/context.js';
import * as S from '../../http/schemas.js';
import { diagnoseToken } from '../../observe/doctor/diagnose.js';

const DoctorBody = T.Object(
  {
    token: T.String({ maxLength: 4096, description: 'the token to explain, as the client holds it (a scheme word or whitespace in it is diagnosed too)' }),
    scopes: T.Optional(T.Array(T.String({ maxLength: 128 }), { maxItems: 32, description: 'scopes the endpoint requires' })),
    satisfy: T.Optional(T.Union([T.Literal('all'), T.Literal('any')])),
    file: T.Optional(T.String({ maxLength: 4096, description: 'the absolute path the token was read from, when a file: a file a binding writes is not warned about for its trailing newline' })),
  },
  { additionalProperties: false },
);

/**
 * POST /api/v1/doctor: the server-side half of `tokenwarden doctor`. It knows revocation, expiry
 * and scopes, so the CLI needs no store access. The answer names the token by its public id only.
 */
export function registerDoctorRoutes(api: FastifyInstance, ctx: AppContext): void {
  api.post<{ Body: Static<typeof DoctorBody> }>(
    '/doctor',
    {
      schema: {
        tags: ['verification'],
        summary: 'Explain why a token gets 401 or 403, or why it works (needs admin:token or token.introspect)',
        body: DoctorBody,
        response: { 200: T.Any(), 400: S.Problem, 401: S.Problem, 403: S.Problem },
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return diagnoseToken(ctx.store, ctx.verifier, ctx.clock.now(), req.body);
    },
  );
}
