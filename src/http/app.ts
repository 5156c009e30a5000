import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { Problem } from '../errors.js';
import type { AppContext } from './context.js';
import { bearerFrom, challenge, createForwardAuthHandler, forwardAuthOptions, isForwardAuthPath, sourceOf } from './forward-auth.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerOpsRoutes } from './routes/ops.js';
import { registerDoctorRoutes } from '../observe/doctor/routes.js';
import { registerNotificationRoutes } from '../observe/notify-routes.js';
import { adoptFrontPeer } from './peer.js';
import { createNodeServer } from './tls.js';
import { registerPolicyRoutes } from './routes/policy.js';
import { registerTokenRoutes } from './routes/tokens.js';
import { registerUi } from './ui.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const forwardAuth = createForwardAuthHandler(ctx.verifier, forwardAuthOptions(ctx.config));
  const app = Fastify({
    loggerInstance: ctx.logger as unknown as import("fastify").FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    trustProxy: ctx.config.verify.trustedProxies,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: true } },
    // The forward-auth check runs before the framework: it is on every request of the services behind the proxy.
    // HTTPS when `tls` is configured, with the certificate reloaded when its files change.
    // Behind the front (listen.front: threads) this server listens only on the private socket: plain HTTP, the front's peer headers trusted.
    serverFactory: (handler) =>
      createNodeServer(ctx.behindFront ? undefined : ctx.config.tls, (req: IncomingMessage, res: ServerResponse) => {
        if (ctx.behindFront) adoptFrontPeer(req);
        if (isForwardAuthPath(req.url ?? '')) return forwardAuth(req, res);
        handler(req, res);
      }, ctx.logger),
  });
  app.decorateRequest('principal', null as never);

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'tokenwarden',
        version: '0.1.0',
        description: 'Mint, verify, deliver and rotate machine bearer tokens. Errors are RFC 9457 problem JSON.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.setErrorHandler((err: FastifyError | Problem, req, reply) => {
    const p = toProblem(err);
    if (p.status >= 500) req.log.error({ err }, 'request failed');
    if (p.status === 401) reply.header('www-authenticate', 'Bearer realm="tokenwarden", error="invalid_token"');
    reply.code(p.status).type('application/problem+json').send(p.toBody(req.url.split('?')[0]));
  });
  app.setNotFoundHandler((req, reply) => {
    const p = new Problem('not-found', `no route ${req.method} ${req.url.split('?')[0]}; the API lives under /api/v1 (see /api/v1/openapi.json)`);
    reply.code(404).type('application/problem+json').send(p.toBody());
  });

  // Every /api/v1 route needs a valid tokenwarden token, except the API description itself.
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/api/v1/') || req.url.startsWith('/api/v1/openapi.json')) return;
    await authenticate(ctx, req, reply);
  });

  registerOpsRoutes(app, ctx, authenticate);
  await app.register(
    async (api) => {
      registerTokenRoutes(api, ctx);
      registerAdminRoutes(api, ctx);
      registerPolicyRoutes(api, ctx);
      registerNotificationRoutes(api, ctx);
      registerDoctorRoutes(api, ctx);
      api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    },
    { prefix: '/api/v1' },
  );
  registerUi(app);
  for (const plugin of ctx.plugins ?? []) await plugin(app, ctx);
  return app;
}

/** Establishes `req.principal` from the bearer token, or answers 401/429 with a problem body. */
export async function authenticate(ctx: AppContext, req: FastifyRequest, reply: import('fastify').FastifyReply): Promise<void> {
  const { header, trustedProxies } = forwardAuthOptions(ctx.config);
  const source = sourceOf(req.raw, trustedProxies);
  const v = await ctx.verifier.verify(bearerFrom(req.headers, header), source);
  if (!v.ok) {
    const status = v.reason === 'rate_limited' ? 429 : 401;
    const detail =
      v.reason === 'missing'
        ? 'send a tokenwarden token as "Authorization: Bearer twd_…"'
        : `${v.detail}; run "tokenwarden doctor" with the token to see why`;
    reply
      .code(status)
      .header('www-authenticate', challenge({ status: 401, error: v.reason === 'missing' ? '' : 'invalid_token', description: v.detail }))
      .type('application/problem+json')
      .send(new Problem(status === 429 ? 'rate-limited' : 'unauthorized', detail).toBody(req.url.split('?')[0]));
    return reply;
  }
  req.principal = {
    actorId: v.identity.actorId,
    actorName: v.identity.actorName,
    tokenId: v.identity.tokenId,
    scopes: v.identity.scopes,
    ip: source.ip,
    requestId: req.id,
  };
}

function toProblem(err: FastifyError | Problem): Problem {
  if (err instanceof Problem) return err;
  const fe = err as FastifyError & { validation?: { instancePath: string; message?: string; params?: Record<string, unknown> }[]; validationContext?: string };
  if (fe.validation) {
    const errors = fe.validation.map((v) => {
      const extra = v.params?.additionalProperty ? `/${String(v.params.additionalProperty)}` : v.params?.missingProperty ? `/${String(v.params.missingProperty)}` : '';
      const field = `${v.instancePath}${extra}`.replace(/^\//, '').replace(/\//g, '.') || fe.validationContext || 'body';
      const message = v.params?.additionalProperty ? 'is not a known field' : (v.message ?? 'is invalid');
      return { field, message };
    });
    const detail = errors.map((e) => `${e.field} ${e.message}`).join('; ');
    return new Problem('validation', `the ${fe.validationContext ?? 'request'} is invalid: ${detail}`, { field: errors[0]?.field, errors });
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new Problem('payload-too-large', 'the request body is larger than 64 KiB');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new Problem('bad-request', 'send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new Problem('bad-request', 'the JSON body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new Problem('bad-request', 'the body is not valid JSON');
  }
  if (fe instanceof SyntaxError || fe.statusCode === 400) return new Problem('bad-request', 'the body is not valid JSON');
  if (fe.statusCode === 415) return new Problem('bad-request', 'send the body as application/json');
  if (fe.statusCode === 413) return new Problem('payload-too-large', 'the request body is too large');
  return new Problem('internal', 'an internal error occurred; the server log has the details under this request id');
}
