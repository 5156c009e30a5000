import type { Authority, Principal } from '../authority/authority.js';
import type { Clock } from '../clock.js';
import type { ResolvedConfig } from '../config/server-config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../observe/metrics.js';
import type { Store } from '../store/store.js';
import type { Verifier } from '../verify/verifier.js';

/** What the HTTP edge needs from the services behind it. */
export interface AppContext {
  config: ResolvedConfig;
  store: Store;
  authority: Authority;
  verifier: Verifier;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
  /** Extra route plugins contributed by other parts (delivery, UI, …). */
  plugins?: ((app: import('fastify').FastifyInstance, ctx: AppContext) => Promise<void> | void)[];
  ready?: () => Promise<void>;
  /** listen.front: threads — the app listens only on its private socket, behind the front thread(s). */
  behindFront?: boolean;
  /** Delivery bindings (API, CLI, UI) and the controller that rotates them. */
  bindings?: import('../delivery/bindings/binding-service.js').BindingService;
  delivery?: import('../delivery/controller.js').DeliveryController;
  /** The webhook notifier, when `notifications.webhookUrl` is set. */
  notifier?: import('../observe/notify.js').Notifier;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
    /** The client's address by the one source-address rule (src/verify/request-origin.ts). */
    readonly clientIp: string | null;
  }
}
