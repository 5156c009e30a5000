import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AuthorityEvents } from '../authority/events.js';
import type { ResolvedConfig } from '../config/config.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { VERIFY_RESULTS, verifierOptions } from '../verify/verifier.js';
import { forwardAuthOptions } from './forward-auth.js';
import type { AuthWorkerData, FromAuthWorker, ToAuthWorker } from './forward-auth-worker.js';
import { keepAliveTimeoutOf } from './tls.js';

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

/**
 * `authListen:` — a second listener serving only GET /auth, in a worker thread of its own
 * (forward-auth-worker.ts). The main thread keeps it told of every revocation and grant change
 * it learns, folds its verification counts into /metrics, restarts it if it dies, and reports
 * it in /readyz while it is down.
 */
export class ForwardAuthListener {
  private worker: Worker | undefined;
  private readonly counts: Float64Array;
  private readonly reported: Float64Array;
  private stopping = false;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private down: string | undefined = 'starting';
  url = '';

  private constructor(
    private readonly data: AuthWorkerData,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    this.counts = new Float64Array(data.results);
    this.reported = new Float64Array(VERIFY_RESULTS.length);
  }

  /** Starts the thread and waits until it listens; a bind or store failure fails the start with its reason. */
  static async start(config: ResolvedConfig, deps: { metrics: Metrics; logger: Logger; events: AuthorityEvents }): Promise<ForwardAuthListener | undefined> {
    if (!config.authListen) return undefined;
    const listener = new ForwardAuthListener(
      {
        storeUrl: config.store.url,
        verifier: verifierOptions(config),
        forwardAuth: forwardAuthOptions(config),
        host: config.authListen.host,
        port: config.authListen.port,
        tls: config.tls,
        keepAliveTimeoutMs: keepAliveTimeoutOf(config),
        logLevel: config.log.level,
        results: new SharedArrayBuffer(8 * VERIFY_RESULTS.length),
      },
      deps.logger,
      deps.metrics,
    );
    deps.events.on('token-revoked', (id) => listener.post({ type: 'invalidate', tokenId: id }));
    deps.events.on('actor-changed', (id) => listener.post({ type: 'invalidate-actor', actorId: id }));
    deps.metrics.addVerificationCounts(() => listener.takeCounts());
    deps.metrics.authListenerRestarts.inc(0);
    await listener.spawn(true);
    return listener;
  }

  /** A revocation another replica announced (or the poll found). */
  markRevoked(tokenId: string): void {
    this.post({ type: 'revoked', tokenId });
  }

  invalidateActor(actorId: string): void {
    this.post({ type: 'invalidate-actor', actorId });
  }

  health(): { ok: true } | { ok: false; detail: string } {
    return this.down === undefined ? { ok: true } : { ok: false, detail: `the auth listener (authListen) is down: ${this.down}` };
  }

  /** Counts since the last call, per VERIFY_RESULTS entry. */
  private takeCounts(): number[] {
    return VERIFY_RESULTS.map((_, i) => {
      const now = this.counts[i]!;
      const delta = now - this.reported[i]!;
      this.reported[i] = now;
      return delta;
    });
  }

  private post(message: ToAuthWorker): void {
    this.worker?.postMessage(message);
  }

  /** The first start reports failure to the caller; a restart that fails is retried with backoff. */
  private spawn(initial: boolean): Promise<void> {
    const worker = newWorker(this.data);
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let listening = false;
      worker.on('message', (m: FromAuthWorker) => {
        if (m.type === 'listening') {
          listening = true;
          this.url = m.url;
          // A restart comes back on the same port, also when the configuration asked for any free one (0).
          this.data.port = m.port;
          this.down = undefined;
          this.restartDelay = RESTART_MIN_MS;
          this.logger.info({ url: m.url }, 'auth listener ready (GET /auth only)');
          resolve();
        } else if (m.type === 'failed') {
          this.down = m.message;
          if (!listening && initial) reject(new Error(m.message));
          else this.logger.error({ reason: m.message }, 'auth listener failed');
        }
      });
      worker.on('error', (err) => {
        this.down = err.message;
        if (!listening && initial) reject(new Error(`the auth listener failed to start: ${err.message}`));
        else this.logger.error({ reason: err.message }, 'auth listener crashed');
      });
      worker.on('exit', (code) => {
        if (this.worker === worker) this.worker = undefined;
        if (this.stopping) return;
        this.down ??= `its thread exited with code ${code}`;
        if (!listening && initial) return reject(new Error(`the auth listener exited before listening (code ${code}): ${this.down}`));
        // Its caches died with it, so a fresh one misses no revocation: it reads the store again.
        this.logger.warn({ code, reason: this.down, retryInMs: this.restartDelay }, 'auth listener stopped; restarting it');
        this.metrics.authListenerRestarts.inc();
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          void this.spawn(false);
        }, this.restartDelay);
        this.restartDelay = Math.min(this.restartDelay * 2, RESTART_MAX_MS);
      });
    });
  }

  async close(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((done) => worker.once('exit', () => done()));
    worker.postMessage({ type: 'close' } satisfies ToAuthWorker);
    // Connections that never go idle must not hold the shutdown forever.
    const deadline = setTimeout(() => void worker.terminate(), 10_000);
    await exited;
    clearTimeout(deadline);
  }
}

/** The compiled thread from dist/; from the TypeScript sources (tests, bench), the same file through tsx. */
function newWorker(data: AuthWorkerData): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = new URL(fromSource ? './forward-auth-worker.ts' : './forward-auth-worker.js', import.meta.url);
  if (!fromSource) return new Worker(entry, { workerData: data });
  // require.resolve would pick tsx's CommonJS build, which cannot register ESM hooks: take the package's ESM entry.
  const pkgPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const tsx = pathToFileURL(join(dirname(pkgPath), pkg.exports['./esm/api']!.import.default)).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}
