import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { VERIFY_RESULTS } from '../verify/verifier.js';

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
    collect: () => this.foldVerificationCounts(),
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
    collect: () => this.beforeCollect(),
  });
  readonly tokenExpiresIn = new Gauge({
    name: 'tokenwarden_token_expires_in_seconds',
    help: 'Seconds until each live token expires; managed="true" when a binding rotates it',
    labelNames: ['token_id', 'token_name', 'actor', 'managed'] as const,
    registers: [this.registry],
    collect: () => this.beforeCollect(),
  });
  readonly tokenLifetime = new Gauge({
    name: 'tokenwarden_token_lifetime_seconds',
    help: 'Whole lifetime (expiry minus issue) of each live token, so expiry alerts can be relative to it',
    labelNames: ['token_id', 'token_name', 'actor', 'managed'] as const,
    registers: [this.registry],
    collect: () => this.beforeCollect(),
  });
  readonly tokensByState = new Gauge({
    name: 'tokenwarden_tokens',
    help: 'Tokens by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: () => this.beforeCollect(),
  });

  // Delivery, rotation and upstream refresh. `binding` is the binding's name (operator-chosen, never a secret).
  readonly rotations = new Counter({
    name: 'tokenwarden_rotations_total',
    help: 'Rotations by binding and outcome (success; failure: an attempt failed; expired-before-confirm / revoked-before-confirm: finished, but the old token died before the new one was confirmed)',
    labelNames: ['binding', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly bindingExpiry = new Gauge({
    name: 'tokenwarden_binding_token_expiry_timestamp_seconds',
    help: 'Expiry time (unix seconds) of the token currently delivered by each binding',
    labelNames: ['binding'] as const,
    registers: [this.registry],
  });
  readonly bindingIssued = new Gauge({
    name: 'tokenwarden_binding_token_issued_timestamp_seconds',
    help: 'When the token currently delivered by each binding was minted or fetched (unix seconds); its lifetime is expiry minus this',
    labelNames: ['binding'] as const,
    registers: [this.registry],
  });
  readonly bindingNextRotation = new Gauge({
    name: 'tokenwarden_binding_next_rotation_timestamp_seconds',
    help: 'When each binding is due to replace its token (unix seconds); in the past while a rotation is due and not begun',
    labelNames: ['binding'] as const,
    registers: [this.registry],
  });
  readonly bindingLastSuccess = new Gauge({
    name: 'tokenwarden_binding_last_success_timestamp_seconds',
    help: 'Time of the last successful rotation or refresh of each binding',
    labelNames: ['binding'] as const,
    registers: [this.registry],
  });
  readonly bindingHealthy = new Gauge({
    name: 'tokenwarden_binding_healthy',
    help: '1 when the binding delivered a valid token and its last attempt succeeded, else 0',
    labelNames: ['binding'] as const,
    registers: [this.registry],
  });
  readonly sinkErrors = new Counter({
    name: 'tokenwarden_sink_errors_total',
    help: 'Failed sink writes, reads or removals by binding and sink kind (file, kubernetes-secret)',
    labelNames: ['binding', 'sink'] as const,
    registers: [this.registry],
  });
  readonly sinkDrift = new Counter({
    name: 'tokenwarden_sink_drift_total',
    help: 'Times a sink was found missing its token or holding another one between rotations (then rotated), by binding',
    labelNames: ['binding'] as const,
    registers: [this.registry],
  });
  readonly refreshFailures = new Counter({
    name: 'tokenwarden_source_refresh_failures_total',
    help: 'Failed upstream token refreshes by binding and source kind (http-login, oauth2-client-credentials, …)',
    labelNames: ['binding', 'source'] as const,
    registers: [this.registry],
  });

  readonly bindingExpiresIn = new Gauge({
    name: 'tokenwarden_binding_token_expires_in_seconds',
    help: 'Seconds until the token currently delivered by each binding expires',
    labelNames: ['binding'] as const,
    registers: [this.registry],
    collect: () => this.beforeCollect(),
  });
  readonly authListenerRestarts = new Counter({
    name: 'tokenwarden_auth_listener_restarts_total',
    help: 'Times a thread answering GET /auth (a front thread of the main port, or authListen) died and was started again',
    registers: [this.registry],
  });
  readonly notifications = new Counter({
    name: 'tokenwarden_notifications_total',
    help: 'Webhook notifications by kind (token.expiring, token.unused, rotation.failed) and outcome (sent, retry, failed)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });

  private readonly verificationCounts: (() => number[])[] = [];

  /** Verifications counted elsewhere (the auth listener's thread), as counts per VERIFY_RESULTS entry since the last read. */
  addVerificationCounts(read: () => number[]): void {
    this.verificationCounts.push(read);
  }

  private foldVerificationCounts(): void {
    for (const read of this.verificationCounts) {
      read().forEach((n, i) => {
        if (n > 0) this.verifications.inc({ result: VERIFY_RESULTS[i]! }, n);
      });
    }
  }

  private readonly collectors: (() => Promise<void>)[] = [];
  private collecting: Promise<void> | undefined;

  /** Work to run once per scrape before the gauges above are read (they are computed from the store). */
  onCollect(collector: () => Promise<void>): void {
    this.collectors.push(collector);
  }

  /** Every gauge's collect() joins the same in-flight run, so one scrape reads the store once. */
  private beforeCollect(): Promise<void> {
    this.collecting ??= Promise.all(this.collectors.map((c) => c()))
      .then(() => undefined)
      .finally(() => {
        this.collecting = undefined;
      });
    return this.collecting;
  }

  constructor(options: { defaultMetrics?: boolean } = {}) {
    // The event-loop delay is sampled every 100 ms, not prom-client's 10 ms: a hundred wake-ups a second of the
    // main thread less, beside the front thread that answers /auth; a scrape still sees hundreds of samples.
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'tokenwarden_process_', eventLoopMonitoringPrecision: 100 });
  }
}
