import { dirname, join, resolve } from 'node:path';
import type { Authority } from '../authority/authority.js';
import { type Clock, parseDuration } from '../clock.js';
import { ConfigError, type ResolvedConfig, controllerTakeover, takeoverWarnings } from '../config/server-config.js';
import { Problem } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../observe/metrics.js';
import type { Store } from '../store/store.js';
import type { Verifier } from '../verify/verifier.js';
import { DeliveryController } from './controller.js';
import { type Leadership, StoreLease } from './leader/lease.js';
import { leaseIdentity } from './leader/leadership.js';
import type { RotationDeps } from './rotation/rotation.js';
import type { SourceProviderFactory } from './token-provider.js';
import { SealedBox } from '../token/sealed.js';
import { BindingService } from './bindings/binding-service.js';
import type { FileConfinement } from './sinks/confine.js';

export interface DeliveryOptions {
  /** Run the controller on a timer (default true). Tests with a ManualClock call controller.tick() instead. */
  autoStart?: boolean;
  intervalMs?: number;
  /** How often sinks are read back for drift (default `delivery.resync`, 5m; 0 never). */
  resyncMs?: number;
  concurrency?: number;
  /** How often sink watches fall back to a stat or read (default 2 s for files, 5 s for Secrets). */
  sinkPollMs?: number;
  /** Watch sinks between resyncs (default true). */
  watchSinks?: boolean;
  /** Replaces the store lease (e.g. a Kubernetes Lease). */
  leadership?: Leadership;
  sourceProvider?: SourceProviderFactory;
  /** The delivery key, when the caller already opened it (the server shares it with the sources). */
  sealed?: SealedBox;
  /** Handed to the Kubernetes sink and restart: clients, a KubeConfig, or the server's LazyKube (src/kubernetes/lazy.ts). */
  kubernetes?: unknown;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Retry cap while the delivered token has expired or is in its last tenth (default `delivery.urgentRetry`, 10s). */
  urgentRetryMs?: number;
  pollMs?: number;
}

export interface Delivery {
  service: BindingService;
  controller: DeliveryController;
  /** Brings the config file's bindings into the store (before the server listens). */
  reconcile(): Promise<void>;
  /** Starts the controller loop (after the server listens). */
  start(): void;
  stop(): Promise<void>;
}

/** How long a leader's lease lasts without renewal (`delivery.leaseTtl`, default 15 s). */
export function deliveryLeaseTtlMs(config: ResolvedConfig): number {
  return controllerTakeover(config).leaseTtlMs;
}

/** The delivery key seals in-flight tokens; replicas sharing a store must share it. */
export function deliveryKeyPath(config: ResolvedConfig, storeEngine: string, storeLocation: string): string {
  if (config.delivery.keyFile) return resolve(config.delivery.keyFile);
  return storeEngine === 'sqlite' ? join(dirname(storeLocation), 'delivery.key') : resolve('.data/delivery.key');
}

/**
 * Where file sinks may write (`delivery.fileRoots`, for bindings from the API) and what no sink
 * may touch whatever its origin: the data dir (the SQLite file's directory, the delivery key's),
 * the configuration file, the TLS certificate and key, the webhook secret.
 */
export function fileConfinement(config: ResolvedConfig, storeEngine: string, storeLocation: string): FileConfinement {
  const keyPath = deliveryKeyPath(config, storeEngine, storeLocation);
  const sqlite = storeEngine === 'sqlite' && storeLocation !== ':memory:' ? [storeLocation] : [];
  return {
    roots: config.delivery.fileRoots ?? [],
    protectedDirs: [...new Set([dirname(keyPath), ...sqlite.map((f) => dirname(f))])],
    protectedFiles: [keyPath, ...sqlite, config.sourceFile, config.tls?.cert, config.tls?.key, config.notifications?.secretFile]
      .filter((f): f is string => typeof f === 'string' && f.length > 0)
      .map((f) => resolve(f)),
  };
}

export function createDelivery(
  parts: {
    config: ResolvedConfig;
    store: Store;
    authority: Authority;
    verifier: Verifier;
    metrics: Metrics;
    clock: Clock;
    logger: Logger;
    /** Told of every failed rotation (webhook notices), when configured. */
    notifier?: RotationDeps['notifier'];
  },
  options: DeliveryOptions = {},
): Delivery {
  const { config, store, authority, verifier, metrics, clock } = parts;
  const logger = parts.logger.child({ part: 'delivery' });
  const timings = controllerTakeover(config);
  const intervalMs = options.intervalMs ?? timings.intervalMs;
  const leaseTtlMs = timings.leaseTtlMs;
  const sinkDeps = { logger, clock, kubernetes: options.kubernetes, confinement: fileConfinement(config, store.engine, store.location) };
  const sealed = options.sealed ?? SealedBox.fromFile(deliveryKeyPath(config, store.engine, store.location));
  const leadership = options.leadership ?? new StoreLease(store, clock, leaseIdentity(), { ttlMs: leaseTtlMs });
  const controller = new DeliveryController(
    {
      store,
      authority,
      clock,
      metrics,
      logger,
      sealed,
      sinkDeps,
      lastUse: verifier.lastUse,
      inspect: (bearer) => verifier.inspect(bearer),
      sourceProvider: options.sourceProvider,
      notifier: parts.notifier,
      leadership,
      pollMs: options.pollMs ?? Math.min(intervalMs, 1000),
      retryBaseMs: options.retryBaseMs ?? 1000,
      retryMaxMs: options.retryMaxMs ?? 300_000,
      urgentRetryMs: options.urgentRetryMs ?? parseDuration(config.delivery.urgentRetry ?? '10s')!,
    },
    { intervalMs, resyncMs: options.resyncMs ?? parseDuration(config.delivery.resync ?? '5m')!, concurrency: options.concurrency, sinkPollMs: options.sinkPollMs, watchSinks: options.watchSinks },
  );
  const service = new BindingService({
    store,
    authority,
    clock,
    logger,
    sinkDeps,
    maxLifetimeMs: config.durations.maxLifetimeMs,
    takeoverMs: timings.takeoverMs,
    sourceProvider: options.sourceProvider,
    // A process with delivery.enabled: false never acts on bindings, not even after an API change.
    kick: config.delivery.enabled === false ? undefined : () => controller.kick(),
  });
  return {
    service,
    controller,
    async reconcile() {
      let result: Awaited<ReturnType<BindingService['reconcileConfig']>>;
      try {
        result = await service.reconcileConfig(config.bindings ?? []);
      } catch (err) {
        if (!(err instanceof Problem)) throw err;
        throw new ConfigError([`${err.extra.field ?? 'bindings'}: ${err.detail}`]);
      }
      if (result.created.length || result.updated.length || result.removed.length) {
        logger.info({ created: result.created, updated: result.updated, removed: result.removed }, 'config bindings reconciled');
      }
      for (const p of result.problems) logger.warn(`config binding not ready, will retry: ${p}`);
      for (const w of takeoverWarnings(config)) logger.warn(w);
    },
    start() {
      if (config.delivery.enabled !== false && options.autoStart !== false) controller.start();
    },
    stop: () => controller.stop(),
  };
}
