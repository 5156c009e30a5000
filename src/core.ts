import { Authority } from './authority/authority.js';
import type { TokenPolicy } from './authority/issuance.js';
import { type Clock, systemClock } from './clock.js';
import type { ResolvedConfig } from './config/server-config.js';
import type { Logger } from './log.js';
import { connect } from './store/connect.js';
import { Store } from './store/store.js';
import { ChangeFanout, verifierSubscriber } from './verify/fanout.js';
import { Verifier, verifierOptions } from './verify/verifier.js';

/** The parts every process of tokenwarden's needs, built one way. */
export interface Core {
  config: ResolvedConfig;
  clock: Clock;
  logger: Logger;
  store: Store;
  authority: Authority;
  verifier: Verifier;
  /** Revocations and grant changes, from here and from other processes, to every cache (verify/fanout.ts). */
  fanout: ChangeFanout;
  close(): Promise<void>;
}

/** The token policy as the configuration states it. */
export function tokenPolicy(config: Pick<ResolvedConfig, 'durations'>): TokenPolicy {
  const d = config.durations;
  return { maxLifetimeMs: d.maxLifetimeMs, defaultLifetimeMs: d.defaultLifetimeMs, bootstrapLifetimeMs: d.bootstrapLifetimeMs };
}

/**
 * The one factory (Gafaelfawr's factory.py): store → authority → verifier → fan-out, for the
 * server, `admin recover`, the gate's local check and the tests. The fan-out is built but not
 * started (`core.fanout.start()`): a process that only writes (recover) needs no poll. The
 * forward-auth threads are the exception by design: their isolate holds a store connection and a
 * verifier only (forward-auth/worker.ts), and learns of changes from this core's fan-out.
 */
export async function createCore(config: ResolvedConfig, deps: { clock?: Clock; logger: Logger }): Promise<Core> {
  const clock = deps.clock ?? systemClock;
  const store = new Store(await connect(config.store.url));
  const authority = new Authority(store, clock, tokenPolicy(config));
  const verifier = new Verifier(store, clock, verifierOptions(config));
  const fanout = new ChangeFanout({ store, events: authority.events, logger: deps.logger, storeUrl: config.store.url });
  fanout.subscribe(verifierSubscriber(verifier));
  let closed = false;
  return {
    config,
    clock,
    logger: deps.logger,
    store,
    authority,
    verifier,
    fanout,
    async close() {
      if (closed) return;
      closed = true;
      await fanout.stop();
      await verifier.lastUse.stop();
      await store.close();
    },
  };
}
