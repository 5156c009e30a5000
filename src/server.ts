import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { CreatedToken } from './authority/authority.js';
import { type Clock, systemClock } from './clock.js';
import type { ResolvedConfig } from './config/server-config.js';
import type { AppContext } from './http/context.js';
import { buildApp } from './http/app.js';
import { bindingRoutes } from './http/routes/bindings.js';
import { type DeliveryOptions, createDelivery, deliveryKeyPath, deliveryLeaseTtlMs } from './delivery/index.js';
import { leadershipFromConfig } from './delivery/leader/leadership.js';
import { LazyKube } from './kubernetes/lazy.js';
import { SealedBox } from './token/sealed.js';
import { createSourceProviderFactory } from './delivery/refresh/source-binding.js';
import { type Logger, createLogger } from './log.js';
import { Metrics } from './observe/metrics.js';
import { attachStoreGauges } from './observe/store-gauges.js';
import { Notifier, resolveNotifySettings } from './observe/notify.js';
import { openDataDirs } from './private-files.js';
import { verifierSubscriber } from './verify/fanout.js';
import { createCore } from './core.js';
import { withStartupLock } from './store/startup-lock.js';
import { VERIFY_RESULTS } from './verify/verifier.js';
import { ForwardAuthListener, frontThreads } from './forward-auth/listener.js';

export interface Tokenwarden {
  app: FastifyInstance;
  ctx: AppContext;
  /** Set on the first start only: the first admin credential. */
  bootstrap: CreatedToken | null;
  url: string;
  /** The `authListen:` listener, when one is configured. */
  authListener?: ForwardAuthListener;
  /** The thread(s) owning the main port (listen.front: threads); the app then listens on a private socket only. */
  front?: ForwardAuthListener;
  authUrl?: string;
  close(): Promise<void>;
}

export interface StartOptions {
  clock?: Clock;
  logger?: Logger;
  /** Extra parts wired in by callers (delivery controller, UI, …). */
  plugins?: AppContext['plugins'];
  /** The delivery controller's knobs (tests drive it by hand with autoStart: false). */
  delivery?: DeliveryOptions;
  listen?: boolean;
}

/** The composition root of `tokenwarden serve`: the core (core.ts), then metrics, delivery, the app and its listeners. */
export async function startTokenwarden(config: ResolvedConfig, options: StartOptions = {}): Promise<Tokenwarden> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger({ level: config.log.level });
  // Read before opening the store, so a bad notifications.secretFile fails the start cleanly.
  const notifySettings = resolveNotifySettings(config.notifications);
  // The cluster (config `kubernetes:`) is connected on first use: file-only users never load the Kubernetes client.
  const kubernetes = options.delivery?.kubernetes ?? new LazyKube(config.kubernetes);
  const leadership =
    options.delivery?.leadership ?? (await leadershipFromConfig(config, { kubernetes, clock, logger, leaseTtlMs: deliveryLeaseTtlMs(config) }));
  const core = await createCore(config, { clock, logger });
  const { store, authority, verifier, fanout } = core;
  // Replicas starting together on PostgreSQL take turns, so exactly one creates the first admin.
  const bootstrap = await withStartupLock(store, () => authority.bootstrap());
  const metrics = new Metrics();
  attachStoreGauges(metrics, store, clock, logger);
  const byResult = Object.fromEntries(VERIFY_RESULTS.map((r) => [r, metrics.verifications.labels(r)]));
  // Every result starts at 0, so rate() and increase() in alert rules see the first failure.
  for (const r of VERIFY_RESULTS) metrics.verifications.inc({ result: r }, 0);
  verifier.onResult = (r) => byResult[r]?.inc();
  verifier.lastUse.start();
  // Every change that makes a cached answer wrong reaches every cache and the controller: one fan-out (verify/fanout.ts).
  let authListener: ForwardAuthListener | undefined;
  let front: ForwardAuthListener | undefined;
  await fanout.start();

  const notifier = notifySettings ? new Notifier(store, clock, metrics, logger, notifySettings) : undefined;
  // The front threads run on the system clock: a server driven by an injected clock (tests) keeps one thread, as listen.front: inline.
  const behindFront = options.listen !== false && config.listen.front === 'threads' && clock === systemClock;
  const ctx: AppContext = { config, store, authority, verifier, metrics, clock, logger, plugins: options.plugins, notifier, behindFront };
  // Bindings (config file and API) and the rotation controller; the controller starts once the app listens.
  // Bindings with `source:` deliver an upstream's token instead of a minted one (src/delivery/refresh/source-binding.ts).
  const keyPath = deliveryKeyPath(config, store.engine, store.location);
  const sealed = SealedBox.fromFile(keyPath);
  // Directories tokenwarden creates are 0700; one that existed before and is open to others is the operator's to fix.
  for (const open of openDataDirs([...(store.engine === 'sqlite' ? [dirname(store.location)] : []), dirname(keyPath)])) {
    logger.warn(open, `the data dir ${open.dir} is open to other users (mode ${open.mode}); it holds the database and keys: run "chmod 700 ${open.dir}"`);
  }
  const sourceProvider = options.delivery?.sourceProvider ?? createSourceProviderFactory({ store, clock, logger, metrics, sealed, kubernetes });
  const delivery = createDelivery(
    { config, store, authority, verifier, metrics, clock, logger, notifier },
    { ...options.delivery, sourceProvider, kubernetes, leadership, sealed },
  );
  // A delivered token revoked, or its identity changed, here or elsewhere: the binding is healed at once.
  fanout.subscribe({ revoked: (id) => delivery.controller.noticeRevoked(id), actorChanged: (id) => delivery.controller.noticeActorChanged(id) });
  await withStartupLock(store, () => delivery.reconcile());
  ctx.plugins = [bindingRoutes(delivery.service), ...(ctx.plugins ?? [])];
  ctx.bindings = delivery.service;
  ctx.delivery = delivery.controller;
  const readyBefore = ctx.ready;
  ctx.ready = async () => {
    await readyBefore?.();
    for (const health of [delivery.controller.health(), front?.health() ?? { ok: true as const }, authListener?.health() ?? { ok: true as const }]) {
      if (!health.ok) throw new Error(health.detail);
    }
  };
  const app = await buildApp(ctx);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await delivery.stop();
    await notifier?.stop();
    // The front first: it stops taking connections and finishes what it passed on to the app, which is still up.
    await front?.close();
    await authListener?.close();
    await app.close();
    if (privateDir) rmSync(privateDir, { recursive: true, force: true });
    await core.close();
  };
  let url = '';
  let privateDir: string | undefined;
  try {
    if (behindFront) {
      // Only this process's user can reach the socket: the front's peer headers are trusted there and nowhere else.
      privateDir = mkdtempSync(join(tmpdir(), 'tokenwarden-api-'));
      const socket = join(privateDir, 'api.sock');
      await app.listen({ path: socket });
      const plan = frontThreads(config.verify.threads);
      if (plan.note) logger.warn(plan.note);
      front = await ForwardAuthListener.startFront(config, { metrics, logger, lastUse: verifier.lastUse, verifier }, { upstream: socket, ...plan });
      fanout.subscribe(verifierSubscriber(front));
      url = front.url;
    } else if (options.listen !== false) {
      url = await app.listen({ host: config.listen.host, port: config.listen.port });
      if (config.tls) url = url.replace(/^http:/, 'https:');
    }
    if (options.listen !== false) {
      authListener = await ForwardAuthListener.start(config, { metrics, logger, lastUse: verifier.lastUse, verifier });
      if (authListener) fanout.subscribe(verifierSubscriber(authListener));
    }
  } catch (err) {
    await close();
    throw err;
  }
  notifier?.start();
  delivery.start();
  return { app, ctx, bootstrap, url, front, authListener, authUrl: authListener?.url, close };
}
