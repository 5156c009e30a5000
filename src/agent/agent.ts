import { type Server, createServer } from 'node:http';
import { type Clock, parseDuration, systemClock } from '../clock.js';
import type { Sink } from '../delivery/sinks/sink.js';
import { createSink } from '../delivery/sinks/index.js';
import type { Logger } from '../log.js';
import { Metrics } from '../observe/metrics.js';
import { createSource } from '../sources/factory.js';
import { RefreshLoop } from '../delivery/refresh/loop.js';
import { type RefreshableSource, SourceRefresher } from '../delivery/refresh/refresher.js';
import { SealingKey, sealedSlot } from '../sources/sealed-state.js';
import type { AgentBindingConfig, AgentConfig } from './agent-config.js';
import { RemoteMintSource, RemoteTokenwarden } from './remote-mint.js';
import { AgentStateFile } from './state.js';

export interface AgentOptions {
  clock?: Clock;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  metrics?: Metrics;
}

export interface BindingReport {
  binding: string;
  healthy: boolean;
  /** Whether the sinks hold a token that has not expired. */
  valid: boolean;
  expiresAt: string | null;
  lastError: string | null;
}

/**
 * sources → sinks without a server: for a sidecar (long-running) or a cron job (`once`).
 * Its only memory is the state file; tokens live in the sinks and nowhere else.
 */
export class TokenAgent {
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly state: AgentStateFile;
  readonly loop: RefreshLoop;
  private readonly refreshers: SourceRefresher[] = [];
  private readonly minters: RemoteMintSource[] = [];
  private readonly closers: (() => Promise<void>)[] = [];
  private retireTimer: NodeJS.Timeout | null = null;
  private metricsServer: Server | null = null;

  private constructor(readonly config: AgentConfig, private readonly options: AgentOptions) {
    this.clock = options.clock ?? systemClock;
    this.metrics = options.metrics ?? new Metrics();
    this.state = new AgentStateFile(config.state.file);
    this.loop = new RefreshLoop(this.clock, 5_000);
  }

  static async create(config: AgentConfig, options: AgentOptions): Promise<TokenAgent> {
    const agent = new TokenAgent(config, options);
    try {
      await agent.build();
    } catch (err) {
      await agent.close();
      throw err;
    }
    return agent;
  }

  private async build(): Promise<void> {
    const { logger, env } = this.options;
    const key = this.config.state.key ? SealingKey.fromRef(this.config.state.key, env) : undefined;
    const remote = this.config.server ? new RemoteTokenwarden(this.config.server, env) : undefined;
    if (remote) this.closers.push(() => remote.close());
    for (const b of this.config.bindings) {
      const sinks: Sink[] = [];
      for (const spec of b.sinks) sinks.push(await createSink(spec, { logger }));
      const bstate = this.state.binding(b.name);
      const source = await this.sourceFor(b, key, remote);
      if (source instanceof RemoteMintSource) this.minters.push(source);
      const closable = source as { close?: () => Promise<void> };
      if (closable.close) this.closers.push(() => closable.close!());
      // A sink emptied or overwritten behind our back (a deleted file, a new pod's emptyDir) is refilled by the refresher's drift check.
      const initial = bstate.refresh ? { ...bstate.refresh } : undefined;
      const refresher = new SourceRefresher({
        binding: b.name,
        source,
        sinks,
        clock: this.clock,
        logger,
        metrics: this.metrics,
        policy: policyOf(b),
        initial,
        onState: async (s) => {
          bstate.refresh = s;
          await this.state.save();
        },
      });
      this.refreshers.push(refresher);
      this.loop.add(refresher);
    }
  }

  private async sourceFor(b: AgentBindingConfig, key: SealingKey | undefined, remote: RemoteTokenwarden | undefined): Promise<RefreshableSource> {
    const deps = { clock: this.clock, logger: this.options.logger, env: this.options.env };
    if (b.mint) return new RemoteMintSource(b.name, b.mint, remote!, this.state.binding(b.name), this.clock);
    return createSource(b.source! as Record<string, unknown> & { kind: string }, deps, { slot: key ? sealedSlot(this.state, key, `binding:${b.name}`) : undefined });
  }

  /** Cron mode: refresh what is due (or missing), revoke what is past its grace, report. */
  async runOnce(): Promise<BindingReport[]> {
    await this.loop.runDue();
    await this.retireDue();
    return this.report();
  }

  /** Sidecar mode: runs until stop(). */
  start(): void {
    this.loop.start();
    this.retireTimer = setInterval(() => {
      this.retireDue().catch((err: Error) => this.options.logger.warn(`revoking replaced tokens failed, will retry: ${err.message}`));
    }, 1_000);
    if (this.config.metrics) {
      this.metricsServer = createServer((req, res) => {
        if (req.url !== '/metrics') return void res.writeHead(404).end();
        void this.metrics.registry.metrics().then((text) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(text));
      });
      this.metricsServer.on('error', (err: NodeJS.ErrnoException) => this.options.logger.error({ port: this.config.metrics!.port }, `the metrics listener failed: ${err.code ?? err.message}`));
      this.metricsServer.listen(this.config.metrics.port, this.config.metrics.host);
    }
  }

  async retireDue(): Promise<void> {
    let changed = 0;
    for (const m of this.minters) changed += await m.retireDue();
    if (changed) await this.state.save();
  }

  report(): BindingReport[] {
    const now = this.clock.now();
    return this.refreshers.map((r) => ({
      binding: r.binding,
      healthy: r.state.healthy,
      valid: r.state.expiresAt !== undefined && r.state.expiresAt > now,
      expiresAt: r.state.expiresAt ? new Date(r.state.expiresAt).toISOString() : null,
      lastError: r.state.healthy ? null : (r.state.lastError ?? null),
    }));
  }

  async close(): Promise<void> {
    this.loop.stop();
    if (this.retireTimer) clearInterval(this.retireTimer);
    if (this.metricsServer) await new Promise((r) => this.metricsServer!.close(r));
    for (const c of this.closers) await c().catch(() => undefined);
    await this.state.save().catch(() => undefined);
  }
}

function policyOf(b: AgentBindingConfig) {
  const r = b.refresh ?? {};
  return {
    // Unset: the one renewal schedule's defaults (delivery/schedule.ts), the same as the server's bindings.
    ...(r.at !== undefined ? { at: r.at } : {}),
    ...(r.jitter !== undefined ? { jitter: r.jitter } : {}),
    ...(r.retryInitial !== undefined ? { retryInitialMs: parseDuration(r.retryInitial)! } : {}),
    ...(r.retryMax !== undefined ? { retryMaxMs: parseDuration(r.retryMax)! } : {}),
  };
}
