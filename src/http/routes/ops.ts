import type { FastifyInstance } from 'fastify';
import { Problem } from '../../errors.js';
import type { AppContext } from '../context.js';

/** Health, readiness and tokenwarden's own metrics (gated on metrics.read: no anonymous scrape). */
export function registerOpsRoutes(app: FastifyInstance, ctx: AppContext): void {
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
  // Gated on metrics.read by the permissions table: no anonymous scrape.
  app.get('/metrics', { schema: { hide: true }, logLevel: 'warn' }, async (_req, reply) => {
    reply.type(ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
