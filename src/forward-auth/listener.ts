import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ResolvedConfig } from '../config/server-config.js';
import type { LastUseBatch } from '../verify/last-use.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../observe/metrics.js';
import { VERIFY_RESULTS, type Verifier, verifierOptions } from '../verify/verifier.js';
import { forwardAuthOptions } from './handler.js';
import type { AuthWorkerData, FromAuthWorker, ToAuthWorker } from './worker.js';
import { keepAliveTimeoutOf } from '../tls.js';

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

type Deps = {
  metrics: Metrics;
  logger: Logger;
  /** The main thread's recorder, which writes the threads' last uses and lets rotation see them at once. */
  lastUse?: { absorb(batch: LastUseBatch): void };
  /**
   * The main thread's verifier. Every thread counts failures into its table (FailureLimiter.table),
   * so the limit is the process's; and as the limit is shared, so are the tokens found valid
   * (vouch), which the limit spares on every thread.
   */
  verifier: Pick<Verifier, 'vouch' | 'onVouch' | 'limiter'>;
};

/** One thread of a listener: its settings, its counts, and its restart state. */
interface Slot {
  data: AuthWorkerData;
  worker?: Worker;
  counts: Float64Array;
  reported: Float64Array;
  down: string | undefined;
  restartDelay: number;
  restartTimer?: NodeJS.Timeout;
}

/**
 * Threads that own a port and answer GET /auth in V8 isolates of their own
 * (worker.ts): `authListen:` (a second port, /auth only), or the front of the
 * main port (listen.front: threads), which passes every other request to the app's private
 * socket. The main thread keeps each thread told of every revocation and grant change it
 * learns, folds their verification counts into /metrics, restarts a thread that dies, and
 * reports it in /readyz while it is down.
 */
export class ForwardAuthListener {
  private readonly slots: Slot[];
  private stopping = false;
  url = '';

  private constructor(
    template: Omit<AuthWorkerData, 'results'>,
    threads: number,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly verifier: Deps['verifier'],
    private readonly lastUse?: Deps['lastUse'],
  ) {
    this.slots = Array.from({ length: threads }, () => {
      const results = new SharedArrayBuffer(8 * VERIFY_RESULTS.length);
      return {
        data: { ...template, results },
        counts: new Float64Array(results),
        reported: new Float64Array(VERIFY_RESULTS.length),
        down: 'starting',
        restartDelay: RESTART_MIN_MS,
      };
    });
  }

  /** `authListen:` — starts its thread and waits until it listens; a bind or store failure fails the start with its reason. */
  static async start(config: ResolvedConfig, deps: Deps): Promise<ForwardAuthListener | undefined> {
    if (!config.authListen) return undefined;
    return ForwardAuthListener.launch(config, deps, { name: 'the auth listener', host: config.authListen.host, port: config.authListen.port }, 1);
  }

  /**
   * The front of the main port: `threads` threads on listen.host/port (several only with
   * reusePort), each answering GET /auth itself and passing the rest to `upstream`.
   */
  static async startFront(config: ResolvedConfig, deps: Deps, options: { upstream: string; threads: number; reusePort: boolean }): Promise<ForwardAuthListener> {
    return ForwardAuthListener.launch(
      config,
      deps,
      { name: 'the front', host: config.listen.host, port: config.listen.port, upstream: options.upstream, reusePort: options.reusePort },
      options.threads,
    );
  }

  private static async launch(
    config: ResolvedConfig,
    deps: Deps,
    where: Pick<AuthWorkerData, 'name' | 'host' | 'port' | 'upstream' | 'reusePort'>,
    threads: number,
  ): Promise<ForwardAuthListener> {
    const listener = new ForwardAuthListener(
      {
        ...where,
        storeUrl: config.store.url,
        verifier: { ...verifierOptions(config), failureTable: deps.verifier.limiter.table },
        forwardAuth: forwardAuthOptions(config),
        tls: config.tls,
        keepAliveTimeoutMs: keepAliveTimeoutOf(config),
        logLevel: config.log.level,
      },
      threads,
      deps.logger,
      deps.metrics,
      deps.verifier,
      deps.lastUse,
    );
    deps.verifier.onVouch((vouch) => listener.post({ type: 'vouch', vouch }));
    deps.metrics.addVerificationCounts(() => listener.takeCounts());
    deps.metrics.authListenerRestarts.inc(0);
    try {
      // The first thread binds (port 0 becomes a real port); the others join it on that port.
      await listener.spawn(listener.slots[0]!, true);
      await Promise.all(listener.slots.slice(1).map((slot) => listener.spawn(slot, true)));
    } catch (err) {
      await listener.close();
      throw err;
    }
    return listener;
  }

  /** The first thread (tests end it by hand to see a restart). */
  get worker(): Worker | undefined {
    return this.slots[0]!.worker;
  }

  get threads(): number {
    return this.slots.length;
  }

  /** A token this process revoked or shortened: the threads re-read it (the fan-out, verify/fanout.ts, calls this). */
  invalidate(tokenId: string): void {
    this.post({ type: 'invalidate', tokenId });
  }

  /** A revocation another replica announced (or the poll found). */
  markRevoked(tokenId: string): void {
    this.post({ type: 'revoked', tokenId });
  }

  invalidateActor(actorId: string): void {
    this.post({ type: 'invalidate-actor', actorId });
  }

  health(): { ok: true } | { ok: false; detail: string } {
    const down = this.slots.find((s) => s.down !== undefined);
    if (!down) return { ok: true };
    const name = down.data.name === 'the front' ? 'the front of the main port (listen.front: threads)' : 'the auth listener (authListen)';
    return { ok: false, detail: `${name} is down: ${down.down}` };
  }

  /** Counts since the last call, per VERIFY_RESULTS entry, summed over the threads. */
  private takeCounts(): number[] {
    return VERIFY_RESULTS.map((_, i) => {
      let delta = 0;
      for (const slot of this.slots) {
        const now = slot.counts[i]!;
        delta += now - slot.reported[i]!;
        slot.reported[i] = now;
      }
      return delta;
    });
  }

  private post(message: ToAuthWorker): void {
    for (const slot of this.slots) slot.worker?.postMessage(message);
  }

  /** A thread's log line, written by this process's logger (its stream, its level names) with the thread named. */
  private relay(line: string, thread: string): void {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const { level, msg, time: _time, pid: _pid, hostname: _host, name: _name, ...fields } = entry;
    const label = this.logger.levels.labels[Number(level)] as 'info' | undefined;
    if (!label || typeof this.logger[label] !== 'function') return;
    this.logger[label]({ ...fields, thread }, typeof msg === 'string' ? msg : '');
  }

  /** The first start reports failure to the caller; a restart that fails is retried with backoff. */
  private spawn(slot: Slot, initial: boolean): Promise<void> {
    const worker = newWorker(slot.data);
    slot.worker = worker;
    const name = slot.data.name;
    return new Promise((resolve, reject) => {
      let listening = false;
      worker.on('message', (m: FromAuthWorker) => {
        if (m.type === 'log') this.relay(m.line, name);
        else if (m.type === 'last-use') this.lastUse?.absorb(m.batch);
        else if (m.type === 'vouched') {
          // Through the main verifier to every listener's threads (this one's included, which is how its other threads hear).
          this.verifier.vouch(m.vouch, { relay: true });
        }
        else if (m.type === 'listening') {
          listening = true;
          this.url = m.url;
          // A restart comes back on the same port, also when the configuration asked for any free one (0); so do the other threads.
          for (const s of this.slots) s.data.port = m.port;
          slot.down = undefined;
          slot.restartDelay = RESTART_MIN_MS;
          this.logger.info({ url: m.url, upstream: slot.data.upstream ? 'api' : undefined }, name === 'the front' ? 'front thread ready (GET /auth, the rest to the API)' : 'auth listener ready (GET /auth only)');
          resolve();
        } else if (m.type === 'failed') {
          slot.down = m.message;
          if (!listening && initial) reject(new Error(m.message));
          else this.logger.error({ reason: m.message }, `${name} failed`);
        }
      });
      worker.on('error', (err) => {
        slot.down = err.message;
        if (!listening && initial) reject(new Error(`${name} failed to start: ${err.message}`));
        else this.logger.error({ reason: err.message }, `${name} crashed`);
      });
      worker.on('exit', (code) => {
        if (slot.worker === worker) slot.worker = undefined;
        if (this.stopping) return;
        slot.down ??= `its thread exited with code ${code}`;
        if (!listening && initial) return reject(new Error(`${name} exited before listening (code ${code}): ${slot.down}`));
        // Its caches died with it, so a fresh one misses no revocation: it reads the store again.
        this.logger.warn({ code, reason: slot.down, retryInMs: slot.restartDelay }, `${name} stopped; restarting it`);
        this.metrics.authListenerRestarts.inc();
        slot.restartTimer = setTimeout(() => {
          slot.restartTimer = undefined;
          void this.spawn(slot, false);
        }, slot.restartDelay);
        slot.restartDelay = Math.min(slot.restartDelay * 2, RESTART_MAX_MS);
      });
    });
  }

  async close(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map((slot) => closeSlot(slot)));
  }
}

async function closeSlot(slot: Slot): Promise<void> {
  if (slot.restartTimer) clearTimeout(slot.restartTimer);
  const worker = slot.worker;
  if (!worker) return;
  const exited = new Promise<void>((done) => worker.once('exit', () => done()));
  worker.postMessage({ type: 'close' } satisfies ToAuthWorker);
  // Connections that never go idle must not hold the shutdown forever.
  const deadline = setTimeout(() => void worker.terminate(), 10_000);
  await exited;
  clearTimeout(deadline);
}

/** Node >= 22.12 (and 23.1+) lets several listeners share a port on Linux (SO_REUSEPORT): the kernel spreads the connections. */
export function hasReusePort(version = process.versions.node, platform = process.platform): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return platform === 'linux' && (major > 22 || (major === 22 && minor >= 12));
}

/** The CPUs this process may use: its affinity (taskset), capped by a cgroup v2 CPU limit (a pod's limits.cpu). */
export function usableCpus(): number {
  let cpus = availableParallelism();
  try {
    const [quota, period] = readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(/\s+/);
    if (quota && quota !== 'max' && Number(period) > 0) cpus = Math.min(cpus, Math.max(1, Math.ceil(Number(quota) / Number(period))));
  } catch {
    /* no cgroup v2 limit readable */
  }
  return cpus;
}

/**
 * verify.threads → how many front threads to run. Without reusePort (Node 20, or not Linux)
 * one thread owns the port: `auto` (the default) then quietly means one, and an explicit number
 * above one falls back to one with `note` saying why.
 */
export function frontThreads(setting: number | 'auto', reusePort = hasReusePort()): { threads: number; reusePort: boolean; note?: string } {
  const wanted = setting === 'auto' ? usableCpus() : setting;
  if (wanted <= 1) return { threads: 1, reusePort: false };
  if (!reusePort) {
    if (setting === 'auto') return { threads: 1, reusePort: false };
    return { threads: 1, reusePort: false, note: `verify.threads ${setting} needs Node >= 22.12 on Linux (reusePort); this is Node ${process.versions.node} on ${process.platform}, so one thread serves the port` };
  }
  return { threads: wanted, reusePort: true };
}

/** The compiled thread from dist/; from the TypeScript sources (tests, bench), the same file through tsx. */
function newWorker(data: AuthWorkerData): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);
  if (!fromSource) return new Worker(entry, { workerData: data });
  // require.resolve would pick tsx's CommonJS build, which cannot register ESM hooks: take the package's ESM entry.
  const pkgPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const tsx = pathToFileURL(join(dirname(pkgPath), pkg.exports['./esm/api']!.import.default)).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}
