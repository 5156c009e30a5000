import type { Clock } from '../clock.js';
import type { Store } from '../store/store.js';
import { countTokensByState, liveTokensByExpiry } from '../store/observe.js';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';

export interface StoreGaugeOptions {
  /** At most this many per-token series (soonest expiry first), so /metrics stays bounded with a million tokens. */
  maxTokenSeries?: number;
}

/**
 * Fills the per-token and per-state gauges from the store at scrape time, so they are exact on
 * every replica without bookkeeping on each change. Labels: public id, name and identity; never a secret.
 */
export function attachStoreGauges(metrics: Metrics, store: Store, clock: Clock, logger: Logger, options: StoreGaugeOptions = {}): void {
  const limit = options.maxTokenSeries ?? 10_000;
  metrics.onCollect(async () => {
    const now = clock.now();
    try {
      const [states, live] = await Promise.all([countTokensByState(store, now), liveTokensByExpiry(store, now, limit)]);
      for (const [state, n] of Object.entries(states)) metrics.tokensByState.set({ state }, n);
      // Reset first: tokens that expired or were revoked since the last scrape must disappear.
      metrics.tokenExpiry.reset();
      metrics.tokenExpiresIn.reset();
      metrics.tokenLifetime.reset();
      for (const t of live) {
        const labels = { token_id: t.id, token_name: t.name, actor: t.actor_name, managed: t.binding_id ? 'true' : 'false' };
        metrics.tokenExpiry.set(labels, Math.floor(t.expires_at / 1000));
        metrics.tokenExpiresIn.set(labels, Math.floor((t.expires_at - now) / 1000));
        metrics.tokenLifetime.set(labels, Math.round((t.expires_at - t.created_at) / 1000));
      }
    } catch (err) {
      // A scrape must still answer when the store hiccups; the previous values stay.
      logger.warn({ err }, 'could not read token gauges from the store');
    }
    // Bindings publish their expiry as a timestamp; the countdown is derived here with the same clock.
    metrics.bindingExpiresIn.reset();
    for (const v of (await metrics.bindingExpiry.get()).values) {
      if (v.labels.binding !== undefined) metrics.bindingExpiresIn.set({ binding: String(v.labels.binding) }, Math.floor(v.value - now / 1000));
    }
  });
}
