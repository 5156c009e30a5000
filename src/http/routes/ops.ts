import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PERMISSIONS } from '../../authority/catalogue.js';
import { Problem } from '../../errors.js';
import type { AppContext } from '../context.js';

type Authenticate = (ctx: AppContext, req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** Health, readiness and tokenwarden's own metrics (gated on metrics.read: no anonymous scrape). */
export function registerOpsRoutes(app: FastifyInstance, ctx: AppContext, authenticate: Authenticate): void {
  app.get('/healthz', { schema: { hide: true }, logLevel: 'warn' }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true }, logLevel: 'warn' }, async (_req, reply) => {
    try {
      await ctx.store.ping();
      await ctx.ready?.();
      // Ready means serving; whether this process also leads the delivery controller is told apart.
      const controller = ctx.delivery?.leadership();
      return { status: 'ready', store: ctx.store.engine, ...(controller ? { controller } : {}) };
    } catch (err) {
      reply.code(503).type('application/problem+json');
      return new Problem('unavailable', `not ready: ${(err as Error).message}`).toBody();
    }
  });
  app.get('/metrics', { schema: { hide: true }, logLevel: 'warn' }, async (req, reply) => {
    await authenticate(ctx, req, reply);
    if (reply.sent) return reply;
    if (!req.principal.scopes.includes(PERMISSIONS.metricsRead)) {
      reply
        .code(403)
        .header('www-authenticate', 'Bearer realm="tokenwarden", error="insufficient_scope", scope="metrics.read"')
        .type('application/problem+json');
      return new Problem('forbidden', 'scraping /metrics needs the scope "metrics.read"').toBody('/metrics');
    }
    reply.type(ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
