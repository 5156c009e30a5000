import type { Clock } from '../../clock.js';
import type { ResolvedConfig } from '../../config/server-config.js';
import { type Requirement, decide, decideCached } from '../../verify/decision.js';
import type { Logger } from '../../log.js';
import { createCore } from '../../core.js';
import type { RequestOrigin } from '../../verify/request-origin.js';
import { type GateCheck, type GateVerdict, verdictOf } from './check.js';

/**
 * Checks against the store directly (a SQLite file beside the exporter, or the shared
 * PostgreSQL), with the same verifier, caches and failure limit as the server. Revocations
 * and grant changes made elsewhere arrive through the same fan-out as the server's (the store
 * poll, PostgreSQL NOTIFY).
 */
export async function localCheck(config: ResolvedConfig, requirement: Requirement, clock: Clock, logger: Logger): Promise<GateCheck> {
  const core = await createCore(config, { clock, logger });
  const { store, verifier, fanout } = core;
  verifier.lastUse.start();
  await fanout.start();
  return {
    describe: `store ${store.location}`,
    check(bearer: string | undefined, source: RequestOrigin): GateVerdict | Promise<GateVerdict> {
      const d = decideCached(verifier, bearer, source, requirement);
      if (d !== undefined) return verdictOf(d);
      return decide(verifier, bearer, source, requirement).then(verdictOf);
    },
    async close() {
      await core.close();
    },
  };
}
