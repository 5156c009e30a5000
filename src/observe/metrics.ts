import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * tokenwarden's own metrics. Labels come from small fixed sets or from public ids and
 * names (token id, binding name), never from a secret.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly verifications = new Counter({
    name: 'tokenwarden_verifications_total',
    help: 'Token verifications by result (ok, missing, malformed, unknown, expired, revoked, disabled, insufficient_scope, rate_limited)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'tokenwarden_http_request_duration_seconds',
    help: 'API request duration by route and status class',
    labelNames: ['route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly tokenExpiry = new Gauge({
    name: 'tokenwarden_token_expiry_timestamp_seconds',
    help: 'Expiry time of each live token (unix seconds); alert on (this - time()) for unmanaged tokens',
    labelNames: ['token_id', 'token_name', 'actor', 'managed'] as const,
    registers: [this.registry],
  });
  readonly tokensByState = new Gauge({
    name: 'tokenwarden_tokens',
    help: 'Tokens by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'tokenwarden_process_' });
  }
}
