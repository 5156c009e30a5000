import { Type as T } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { Problem } from '../../errors.js';
import type { AppContext } from '../context.js';
import { iso } from '../../clock.js';

const NoticeView = T.Object({
  id: T.String(),
  kind: T.String(),
  subject: T.String({ description: 'a token id or a binding name' }),
  createdAt: T.String(),
  attempts: T.Integer(),
  state: T.Union([T.Literal('pending'), T.Literal('delivered'), T.Literal('failed')]),
  deliveredAt: T.Union([T.String(), T.Null()]),
  lastError: T.Union([T.String(), T.Null()]),
  summary: T.String(),
});

/** The notification outbox, and a test notice to prove the webhook and its signature. */
export function registerNotificationRoutes(api: FastifyInstance, ctx: AppContext): void {
  const off = () => new Problem('conflict', 'notifications are off: set notifications.webhookUrl (or TOKENWARDEN_NOTIFY_WEBHOOK_URL) and restart');
  api.get(
    '/notifications',
    { schema: { tags: ['notifications'], summary: 'Recent webhook notices (needs audit.read)', response: { 200: T.Object({ enabled: T.Boolean(), items: T.Array(NoticeView) }) } } },
    async (req) => {
      if (!ctx.notifier) return { enabled: false, items: [] };
      const rows = await ctx.notifier.recent(100);
      return {
        enabled: true,
        items: rows.map((r) => ({
          id: r.id,
          kind: r.kind,
          subject: r.subject,
          createdAt: iso(r.created_at)!,
          attempts: r.attempts,
          state: r.delivered_at !== null ? ('delivered' as const) : r.failed_at !== null ? ('failed' as const) : ('pending' as const),
          deliveredAt: iso(r.delivered_at),
          lastError: r.last_error,
          summary: String((JSON.parse(r.payload) as { summary?: string }).summary ?? ''),
        })),
      };
    },
  );
  api.post(
    '/notifications/test',
    {
      schema: {
        tags: ['notifications'],
        summary: 'Send a test notice to the webhook (needs admin:token)',
        response: { 200: T.Object({ delivered: T.Boolean(), error: T.Optional(T.String()) }) },
      },
    },
    async (req) => {
      if (!ctx.notifier) throw off();
      return ctx.notifier.sendTest();
    },
  );
}
