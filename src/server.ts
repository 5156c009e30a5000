import type { FastifyInstance } from 'fastify';
import { Authority, type CreatedToken } from './authority/authority.js';
import { type Clock, systemClock } from './clock.js';
import type { ResolvedConfig } from './config/config.js';
import type { AppContext } from './http/context.js';
import { buildApp } from './http/app.js';
import { type Logger, createLogger } from './observe/log.js';
import { Metrics } from './observe/metrics.js';
import { connect } from './store/connect.js';
import { Store } from './store/store.js';
import { RevocationWatch } from './verify/revocation-watch.js';
import { type FailureReason, Verifier } from './verify/verifier.js';

export interface Tokenwarden {
  app: FastifyInstance;
  ctx: AppContext;
  /** Set on the first start only: the first admin credential. */
  bootstrap: CreatedToken | null;
  url: string;
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  logger?: Logger;
  /** Extra parts wired in by callers (delivery controller, UI, …). */
  plugins?: AppContext['plugins'];
  listen?: boolean;
}

const RESULTS: (FailureReason | 'ok' | 'insufficient_scope')[] = [
  'ok', 'missing', 'malformed', 'unknown', 'expired', 'revoked', 'disabled', 'insufficient_scope', 'rate_limited',
];

/** The composition root: store → authority → verifier → HTTP. */
export async function startTokenwarden(config: ResolvedConfig, options: StartOptions = {}): Promise<Tokenwarden> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const store = new Store(await connect(config.store.url));
  const authority = new Authority(store, clock, {
    maxLifetimeMs: config.durations.maxLifetimeMs,
    defaultLifetimeMs: config.durations.defaultLifetimeMs,
  });
  const bootstrap = await authority.bootstrap();
  const verifier = new Verifier(
    store,
    clock,
    {
      cacheTtlMs: config.durations.cacheTtlMs,
      negativeTtlMs: config.durations.negativeTtlMs,
      cacheSize: config.verify.cacheSize,
      failureLimit: config.verify.failureLimit,
      failureWindowMs: config.durations.failureWindowMs,
    },
    authority.events,
  );
  const metrics = new Metrics();
  const byResult = Object.fromEntries(RESULTS.map((r) => [r, metrics.verifications.labels(r)]));
  verifier.onResult = (r) => byResult[r]?.inc();
  verifier.lastUse.start();
  const watch = new RevocationWatch(store, verifier, () => Date.now());
  await watch.start();

  const ctx: AppContext = { config, store, authority, verifier, metrics, clock, logger, plugins: options.plugins };
  const app = await buildApp(ctx);
  let url = '';
  if (options.listen !== false) {
    url = await app.listen({ host: config.listen.host, port: config.listen.port });
  }
  let closed = false;
  return {
    app,
    ctx,
    bootstrap,
    url,
    async close() {
      if (closed) return;
      closed = true;
      watch.stop();
      await app.close();
      await verifier.lastUse.stop();
      await store.close();
    },
  };
}
