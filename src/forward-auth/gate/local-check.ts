import type { Clock } from '../../clock.js';
import type { ResolvedConfig } from '../../config/server-config.js';
import { type Requirement, decide, decideCached } from '../../verify/decision.js';
import { connect } from '../../store/connect.js';
import { Store } from '../../store/store.js';
import type { Logger } from '../../log.js';
import { ChangeFanout, verifierSubscriber } from '../../verify/fanout.js';
import type { RequestOrigin } from '../../verify/request-origin.js';
import { Verifier, verifierOptions } from '../../verify/verifier.js';
import { type GateCheck, type GateVerdict, verdictOf } from './check.js';

/**
 * Checks against the store directly (a SQLite file beside the exporter, or the shared
 * PostgreSQL), with the same verifier, caches and failure limit as the server. Revocations
 * and grant changes made elsewhere arrive through the same fan-out as the server's (the store
 * poll, PostgreSQL NOTIFY).
 */
export async function localCheck(config: ResolvedConfig, requirement: Requirement, clock: Clock, logger: Logger): Promise<GateCheck> {
  const store = new Store(await connect(config.store.url));
  const verifier = new Verifier(store, clock, verifierOptions(config));
  verifier.lastUse.start();
  const fanout = new ChangeFanout({ store, logger, storeUrl: config.store.url });
  fanout.subscribe(verifierSubscriber(verifier));
  await fanout.start();
  return {
    describe: `store ${store.location}`,
    check(bearer: string | undefined, source: RequestOrigin): GateVerdict | Promise<GateVerdict> {
      const d = decideCached(verifier, bearer, source, requirement);
      if (d !== undefined) return verdictOf(d);
      return decide(verifier, bearer, source, requirement).then(verdictOf);
    },
    async close() {
      await fanout.stop();
      await verifier.lastUse.stop();
      await store.close();
    },
  };
}
