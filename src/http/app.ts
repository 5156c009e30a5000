import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { ROUTE_PERMISSIONS, type RouteAccess, missingScopes, missingScopesDetail } from '../authority/permissions.js';
import { API_BODY_LIMIT, Problem, bodyTooLarge } from '../errors.js';
import type { AppContext } from './context.js';
import { createForwardAuthHandler, credentialOf, forwardAuthOptions, isForwardAuthPath, sourceOf } from '../forward-auth/handler.js';
import { type Requirement, challenge, decide } from '../verify/decision.js';
import { STORE_RETRY_AFTER_SECONDS, storeUnavailable } from '../store/errors.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerOpsRoutes } from './routes/ops.js';
import { registerDoctorRoutes } from './routes/doctor.js';
import { registerNotificationRoutes } from './routes/notifications.js';
import { adoptFrontPeer } from '../verify/peer.js';
import { createNodeServer, keepAliveTimeoutOf } from '../tls.js';
import { registerPolicyRoutes } from './routes/policy.js';
import { registerTokenRoutes } from './routes/tokens.js';
import { registerUi } from './ui.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
const ANY_TOKEN: Requirement = Object.freeze({ scopes: [], satisfy: 'all' as const });

/** The routes that need a token and have a row in the permissions table: the API (but its own description) and /metrics. */
function isGuarded(path: string): boolean {
  return path === '/metrics' || (path.startsWith('/api/v1/') && path !== '/api/v1/openapi.json');
}

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const forwardAuth = createForwardAuthHandler(ctx.verifier, forwardAuthOptions(ctx.config));
  const app = Fastify({
    loggerInstance: ctx.logger as unknown as import("fastify").FastifyBaseLogger,
    bodyLimit: API_BODY_LIMIT,
    // No trustProxy: the client address comes from the one source-address rule (sourceOf), also for the request log.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: true } },
    // The forward-auth check runs before the framework: it is on every request of the services behind the proxy.
    // HTTPS when `tls` is configured, with the certificate reloaded when its files change. Fastify's
    // keepAliveTimeout is not applied to a factory's server: createNodeServer sets it (listen.keepAliveTimeout).
    // Behind the front (listen.front: threads) this server listens only on the private socket: plain HTTP, the front's peer headers trusted.
    serverFactory: (handler) =>
      createNodeServer(ctx.behindFront ? undefined : ctx.config.tls, (req: IncomingMessage, res: ServerResponse) => {
        if (ctx.behindFront) adoptFrontPeer(req);
        if (isForwardAuthPath(req.url ?? '')) return forwardAuth(req, res);
        handler(req, res);
      }, ctx.logger, keepAliveTimeoutOf(ctx.config)),
  });
  app.decorateRequest('principal', null as never);
  // The permissions table (authority/permissions.ts): each route's scopes, published in OpenAPI and enforced by the hook below.
  app.addHook('onRoute', (route) => {
    const url = route.url ?? route.path;
    if (!isGuarded(url)) return;
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => (m === 'HEAD' ? 'GET' : m));
    const access = ROUTE_PERMISSIONS[`${methods[0]} ${url}`];
    if (!access) throw new Error(`route ${methods[0]} ${url} has no row in the permissions table (src/authority/permissions.ts)`);
    route.config = { ...(route.config as object), access } as typeof route.config;
    route.schema = {
      ...route.schema,
      security: [{ bearer: [...access.scopes] }],
      'x-required-scopes': { scopes: [...access.scopes], satisfy: access.satisfy, ...(access.note ? { note: access.note } : {}) },
    } as typeof route.schema;
  });
  app.decorateRequest('clientIp', {
    getter(this: FastifyRequest) {
      return sourceOf(this.raw, ctx.config.verify.trustedProxies).ip;
    },
  });

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
    if (p.status === 503) reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS));
    reply.code(p.status).type('application/problem+json').send(p.toBody(req.url.split('?')[0]));
  });
  app.setNotFoundHandler((req, reply) => {
    const p = new Problem('not-found', `no route ${req.method} ${req.url.split('?')[0]}; the API lives under /api/v1 (see /api/v1/openapi.json)`);
    reply.code(404).type('application/problem+json').send(p.toBody());
  });

  // Every guarded route (the API, /metrics) needs a valid tokenwarden token; the API description does not.
  // Then the scopes its row names, before the body is even read.
  app.addHook('onRequest', async (req, reply) => {
    if (!isGuarded(req.url.split('?')[0]!)) return;
    await authenticate(ctx, req, reply);
    if (reply.sent) return reply;
    const access = (req.routeOptions.config as { access?: RouteAccess }).access;
    const missing = access ? missingScopes(access, req.principal.scopes) : [];
    if (!access || !missing.length) return;
    reply
      .code(403)
      .header('www-authenticate', challenge({ status: 403, error: 'insufficient_scope', description: 'the token lacks a scope this route needs', scope: access.scopes.join(' ') }))
      .type('application/problem+json')
      .send(new Problem('forbidden', missingScopesDetail(access, missing)).toBody(req.url.split('?')[0]));
    return reply;
  });

  registerOpsRoutes(app, ctx);
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
  // The same decision as /auth (verify/decision.ts), with no scope requirement: the route's row in the permissions table is checked next.
  const d = await decide(ctx.verifier, credentialOf(req.raw, header), source, ANY_TOKEN);
  if (d.status !== 200) {
    const detail =
      d.status === 400
        ? d.description
        : d.error === ''
          ? 'send a tokenwarden token as "Authorization: Bearer twd_…"'
          : `${d.description}; run "tokenwarden doctor" with the token to see why`;
    const kind = d.status === 400 ? 'bad-request' : d.status === 429 ? 'rate-limited' : 'unauthorized';
    if (d.retryAfter !== undefined) reply.header('retry-after', String(d.retryAfter));
    reply
      .code(d.status)
      .header('www-authenticate', challenge(d))
      .type('application/problem+json')
      .send(new Problem(kind, detail, d.status === 400 ? { field: 'authorization' } : {}).toBody(req.url.split('?')[0]));
    return reply;
  }
  const v = { identity: d.identity };
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
  if (storeUnavailable(err)) return new Problem('unavailable', `the store cannot be reached right now; retry in ${STORE_RETRY_AFTER_SECONDS} s (the server log says why)`);
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
      return bodyTooLarge();
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
