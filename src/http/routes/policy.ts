import { Type as T } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { formatDuration } from '../../clock.js';
import type { AppContext } from '../context.js';

const Lifetime = T.Object({ seconds: T.Integer(), text: T.String({ description: 'e.g. "365d"' }) });

/** The token policy in force, so clients (the web UI, scripts) can offer only expiries the server accepts. */
export function registerPolicyRoutes(api: FastifyInstance, ctx: AppContext): void {
  api.get(
    '/policy',
    {
      schema: {
        tags: ['tokens'],
        summary: 'The token lifetime policy: the maximum and the default lifetime of a new token',
        response: { 200: T.Object({ tokens: T.Object({ maxLifetime: Lifetime, defaultLifetime: Lifetime }) }) },
      },
    },
    async () => {
      const life = (ms: number) => ({ seconds: Math.floor(ms / 1000), text: formatDuration(ms) });
      return {
        tokens: {
          maxLifetime: life(ctx.config.durations.maxLifetimeMs),
          defaultLifetime: life(ctx.config.durations.defaultLifetimeMs),
        },
      };
    },
  );
}
