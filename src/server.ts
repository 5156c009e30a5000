import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Authority, type CreatedToken } from './authority/authority.js';
import { type Clock, systemClock } from './clock.js';
import type { ResolvedConfig } from './config/config.js';
import type { AppContext } from './http/context.js';
import { buildApp } from './http/app.js';
import { type DeliveryOptions, createDelivery, deliveryKeyPath, deliveryLeaseTtlMs } from './delivery/index.js';
import { leadershipFromConfig } from './delivery/leadership.js';
import { LazyKube } from './kubernetes/lazy.js';
import { SealedBox } from './delivery/sealed.js';
import { createSourceProviderFactory } from './sources/provider.js';
import { type Logger, createLogger } from './observe/log.js';
import { Metrics } from './observe/metrics.js';
import { attachStoreGauges } from './observe/store-gauges.js';
import { Notifier, resolveNotifySettings } from './observe/notify.js';
import { connect } from './store/connect.js';
import { openDataDirs } from './store/private-files.js';
import { Store } from './store/store.js';
import { ChangeWatch } from './verify/change-watch.js';
import { RevocationListener } from './store/pg-notify.js';
import { withStartupLock } from './store/startup-lock.js';
import { VERIFY_RESULTS, Verifier, verifierOptions } from './verify/verifier.js';
import { ForwardAuthListener, frontThreads } from './http/forward-auth-listener.js';

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

/** The composition root: store → authority → verifier → HTTP. */
export async function startTokenwarden(config: ResolvedConfig, options: StartOptions = {}): Promise<Tokenwarden> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger({ level: config.log.level });
  // Read before opening the store, so a bad notifications.secretFile fails the start cleanly.
  const notifySettings = resolveNotifySettings(config.notifications);
  // The cluster (config `kubernetes:`) is connected on first use: file-only users never load the Kubernetes client.
  const kubernetes = options.delivery?.kubernetes ?? new LazyKube(config.kubernetes);
  const leadership =
    options.delivery?.leadership ?? (await leadershipFromConfig(config, { kubernetes, clock, logger, leaseTtlMs: deliveryLeaseTtlMs(config) }));
  const store = new Store(await connect(config.store.url));
  const authority = new Authority(store, clock, {
    maxLifetimeMs: config.durations.maxLifetimeMs,
    defaultLifetimeMs: config.durations.defaultLifetimeMs,
    bootstrapLifetimeMs: config.durations.bootstrapLifetimeMs,
  });
  // Replicas starting together on PostgreSQL take turns, so exactly one creates the first admin.
  const bootstrap = await withStartupLock(store, () => authority.bootstrap());
  const verifier = new Verifier(
    store,
    clock,
    verifierOptions(config),
    authority.events,
  );
  const metrics = new Metrics();
  attachStoreGauges(metrics, store, clock, logger);
  const byResult = Object.fromEntries(VERIFY_RESULTS.map((r) => [r, metrics.verifications.labels(r)]));
  // Every result starts at 0, so rate() and increase() in alert rules see the first failure.
  for (const r of VERIFY_RESULTS) metrics.verifications.inc({ result: r }, 0);
  verifier.onResult = (r) => byResult[r]?.inc();
  verifier.lastUse.start();
  // What this process learns of other replicas' revocations and grant changes reaches every verifier in it.
  let authListener: ForwardAuthListener | undefined;
  // The delivery controller (built below) hears the same facts: a delivered token revoked or an identity changed elsewhere is healed at once.
  let controller: { noticeRevoked(id: string): void; noticeActorChanged(id: string): void } | undefined;
  let front: ForwardAuthListener | undefined;
  const everyVerifier = {
    markRevoked(id: string) {
      verifier.markRevoked(id);
      front?.markRevoked(id);
      authListener?.markRevoked(id);
      controller?.noticeRevoked(id);
    },
    invalidateActor(id: string) {
      verifier.invalidateActor(id);
      front?.invalidateActor(id);
      authListener?.invalidateActor(id);
      controller?.noticeActorChanged(id);
    },
  };
  const watch = new ChangeWatch(store, everyVerifier, () => Date.now());
  await watch.start();
  // Several replicas share PostgreSQL: a revocation or a change of grants reaches every cache at once; the poll above reconciles both.
  const fanout =
    store.engine === 'postgres'
      ? new RevocationListener({
          url: config.store.url,
          onRevoked: (id) => everyVerifier.markRevoked(id),
          onGrantsChanged: (actorId) => everyVerifier.invalidateActor(actorId),
          onResync: () => watch.check(),
          logger,
        })
      : undefined;
  await fanout?.start();

  const notifier = notifySettings ? new Notifier(store, clock, metrics, logger, notifySettings) : undefined;
  // The front threads run on the system clock: a server driven by an injected clock (tests) keeps one thread, as listen.front: inline.
  const behindFront = options.listen !== false && config.listen.front === 'threads' && clock === systemClock;
  const ctx: AppContext = { config, store, authority, verifier, metrics, clock, logger, plugins: options.plugins, notifier, behindFront };
  // Bindings (config file and API) and the rotation controller; the controller starts once the app listens.
  // Bindings with `source:` deliver an upstream's token instead of a minted one (src/sources/provider.ts).
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
  controller = delivery.controller;
  // Revocations and grant changes made in this process (API, CLI, leak reports) arrive as events.
  authority.events.on('token-revoked', (id) => delivery.controller.noticeRevoked(id));
  authority.events.on('actor-changed', (id) => delivery.controller.noticeActorChanged(id));
  await withStartupLock(store, () => delivery.reconcile());
  ctx.plugins = [delivery.plugin, ...(ctx.plugins ?? [])];
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
    watch.stop();
    await notifier?.stop();
    await fanout?.stop();
    // The front first: it stops taking connections and finishes what it passed on to the app, which is still up.
    await front?.close();
    await authListener?.close();
    await app.close();
    if (privateDir) rmSync(privateDir, { recursive: true, force: true });
    await verifier.lastUse.stop();
    await store.close();
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
      front = await ForwardAuthListener.startFront(config, { metrics, logger, events: authority.events }, { upstream: socket, ...plan });
      url = front.url;
    } else if (options.listen !== false) {
      url = await app.listen({ host: config.listen.host, port: config.listen.port });
      if (config.tls) url = url.replace(/^http:/, 'https:');
    }
    if (options.listen !== false) {
      authListener = await ForwardAuthListener.start(config, { metrics, logger, events: authority.events });
    }
  } catch (err) {
    await close();
    throw err;
  }
  notifier?.start();
  delivery.start();
  return { app, ctx, bootstrap, url, front, authListener, authUrl: authListener?.url, close };
}
