import { type Static, Type as T } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { BindingSpecSchema, FileSinkSpec, KubernetesSecretSinkSpec, SinkSpec } from '../../config/binding-schema.js';
import type { BindingService } from '../../delivery/bindings/binding-service.js';
import type { AppContext } from '../context.js';
import * as S from '../schemas.js';

const errors = { 400: S.Problem, 401: S.Problem, 403: S.Problem, 404: S.Problem, 409: S.Problem };
const Nullable = <X extends import('@sinclair/typebox').TSchema>(s: X) => T.Union([s, T.Null()]);

export const BindingView = T.Object({
  name: T.String(),
  origin: T.Union([T.Literal('config'), T.Literal('api')]),
  state: T.Union([T.Literal('pending'), T.Literal('active'), T.Literal('rotating'), T.Literal('failing'), T.Literal('gone'), T.Literal('removing')]),
  healthy: T.Boolean({ description: 'every sink holds the current token, it verifies, and the last attempt succeeded' }),
  actor: Nullable(T.String({ description: 'null for a source binding (it mints nothing)' })),
  scopes: T.Array(T.String()),
  lifetime: Nullable(T.Union([T.String(), T.Number()])),
  sinks: T.Array(SinkSpec),
  rotation: T.Optional(T.Unknown()),
  restart: T.Array(T.Unknown()),
  source: Nullable(T.Object({ kind: T.String() })),
  description: Nullable(T.String()),
  tokenId: Nullable(T.String({ description: 'public id of the token delivered now' })),
  expiresAt: Nullable(T.String()),
  nextRotationAt: Nullable(T.String()),
  lastSuccessAt: Nullable(T.String()),
  lastError: Nullable(T.String({ description: 'why the last attempt failed; never a secret' })),
  failures: T.Integer(),
  rotations: T.Integer(),
  inFlight: Nullable(T.Object({ seq: T.Integer(), step: T.String(), startedAt: T.String(), attempts: T.Integer(), lastError: Nullable(T.String()) })),
  nextAttemptAt: Nullable(T.String({ description: 'when the controller acts next: the retry while failing (retrying: true), else the scheduled rotation' })),
  retrying: T.Boolean(),
  sinkStates: T.Array(
    T.Object({
      sink: T.String(),
      status: T.String({ description: 'ok, missing, other-token, invalid, expired, unreadable, write-failed or unknown' }),
      tokenId: Nullable(T.String()),
      detail: Nullable(T.String({ description: 'why it is not ok; never a secret' })),
      checkedAt: Nullable(T.String()),
    }),
    { description: 'what each sink holds, as last written or read back' },
  ),
  lastOutcome: Nullable(T.String({ description: 'how the last finished rotation ended: success, expired-before-confirm, revoked-before-confirm, abandoned' })),
  createdAt: T.String(),
  updatedAt: T.String(),
  warnings: T.Optional(T.Array(T.String(), { description: 'create and apply only: accepted, but risky (e.g. a token that could expire while a new controller leader takes over)' })),
});

export const RotationView = T.Object({
  seq: T.Integer(),
  reason: T.String(),
  step: T.String(),
  outcome: Nullable(T.String({ description: 'how it ended: success, expired-before-confirm, revoked-before-confirm, abandoned; null while in flight' })),
  oldTokenId: Nullable(T.String()),
  newTokenId: Nullable(T.String()),
  startedAt: T.String(),
  deliveredAt: Nullable(T.String()),
  confirmedAt: Nullable(T.String()),
  finishedAt: Nullable(T.String()),
  attempts: T.Integer(),
  lastError: Nullable(T.String()),
  note: Nullable(T.String()),
});

const RemovalResult = T.Object({ name: T.String(), state: T.Union([T.Literal('removed'), T.Literal('removing')]), lastError: Nullable(T.String()) });

type Spec = Static<typeof BindingSpecSchema>;

/**
 * The binding schema for requests. Sinks are chosen by `kind` with if/then rather than anyOf,
 * so an error names the field of the sink that was meant ("sinks.0.namespace"), not every branch.
 */
const sinkByKind = {
  type: 'object',
  required: ['kind'],
  properties: { kind: { type: 'string', enum: ['file', 'kubernetes-secret'] } },
  allOf: [
    { if: { type: 'object', properties: { kind: { const: 'file' } } }, then: FileSinkSpec },
    { if: { type: 'object', properties: { kind: { const: 'kubernetes-secret' } } }, then: KubernetesSecretSinkSpec },
  ],
};
const BindingBody = {
  ...BindingSpecSchema,
  properties: { ...BindingSpecSchema.properties, sinks: { ...BindingSpecSchema.properties.sinks, items: sinkByKind } },
} as unknown as typeof BindingSpecSchema;
type Name = Static<typeof S.NameParam>;

/** /api/v1/bindings: declared delivery of tokens to files and Secrets, with their rotation state. */
export function bindingRoutes(service: BindingService) {
  return async (app: FastifyInstance, _ctx: AppContext) => {
    await app.register(
      async (api) => {
        const tags = ['bindings'];
        api.get('/bindings', { schema: { tags, summary: 'List bindings with state, expiry and next rotation', response: { 200: T.Object({ items: T.Array(BindingView) }), ...errors } } }, async (req) => ({
          items: await service.list(req.principal),
        }));
        api.post<{ Body: Spec }>(
          '/bindings',
          { schema: { tags, summary: 'Create a binding; the first token is delivered at once', body: BindingBody, response: { 201: BindingView, ...errors } } },
          async (req, reply) => {
            reply.code(201);
            return service.create(req.principal, req.body);
          },
        );
        api.get<{ Params: Name }>('/bindings/:name', { schema: { tags, params: S.NameParam, response: { 200: BindingView, ...errors } } }, async (req) =>
          service.get(req.principal, req.params.name),
        );
        api.put<{ Params: Name; Body: Spec }>(
          '/bindings/:name',
          {
            schema: {
              tags,
              summary: 'Create or replace a binding (apply); a change of identity, scopes, lifetime or sinks rotates at once',
              params: S.NameParam,
              body: BindingBody,
              response: { 200: BindingView, 201: BindingView, ...errors },
            },
          },
          async (req, reply) => {
            const { view, created } = await service.put(req.principal, req.params.name, req.body);
            reply.code(created ? 201 : 200);
            return view;
          },
        );
        api.delete<{ Params: Name }>(
          '/bindings/:name',
          {
            schema: {
              tags,
              summary: 'Remove a binding: revoke its tokens and delete what it delivered (202 while a sink removal is retried)',
              params: S.NameParam,
              response: { 200: RemovalResult, 202: RemovalResult, ...errors },
            },
          },
          async (req, reply) => {
            const result = await service.delete(req.principal, req.params.name);
            reply.code(result.state === 'removed' ? 200 : 202);
            return result;
          },
        );
        api.post<{ Params: Name }>(
          '/bindings/:name/rotate',
          { schema: { tags, summary: 'Rotate now (mint, deliver, confirm, grace, revoke)', params: S.NameParam, response: { 202: BindingView, ...errors } } },
          async (req, reply) => {
            reply.code(202);
            return service.rotate(req.principal, req.params.name);
          },
        );
        api.get<{ Params: Name; Querystring: { limit?: number } }>(
          '/bindings/:name/history',
          {
            schema: {
              tags,
              summary: 'Rotations of a binding, newest first',
              params: S.NameParam,
              querystring: T.Object({ limit: T.Optional(T.Integer({ minimum: 1, maximum: 1000 })) }, { additionalProperties: false }),
              response: { 200: T.Object({ items: T.Array(RotationView) }), ...errors },
            },
          },
          async (req) => ({ items: await service.history(req.principal, req.params.name, req.query.limit) }),
        );
      },
      { prefix: '/api/v1' },
    );
  };
}
