import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Clock, formatDuration, iso, parseDuration } from '../clock.js';
import type { ServerConfig } from '../config/server-config.js';
import { ConfigError } from '../config/server-config.js';
import { NotificationStore, type NotificationRow } from '../store/notifications.js';
import { type LiveTokenRow, type UnusedCursor, unmanagedExpiringBefore, unusedTokens } from '../store/observe.js';
import type { Store } from '../store/store.js';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';

export type NoticeKind = 'token.expiring' | 'token.unused' | 'rotation.failed' | 'rotation.unconfirmed' | 'test';

export interface NotifySettings {
  url: string;
  /** HMAC-SHA256 key for X-Tokenwarden-Signature; none: unsigned. */
  secret?: string;
  expiryWarningMs: number;
  /** 0 turns the unused-token notice off. */
  unusedForMs: number;
  /** Rotation-failure notices: at most one per binding per this window. */
  repeatAfterMs: number;
  checkIntervalMs: number;
  timeoutMs: number;
  retryAttempts: number;
  retryBackoffMs: number;
}

export const SIGNATURE_HEADER = 'x-tokenwarden-signature';
const MAX_BACKOFF_MS = 3_600_000;

/** `sha256=<hex>` over the exact body bytes, as GitHub-style receivers expect. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Settings from `notifications:`; null when no webhook is configured. The key comes from a file or env, never the config file. */
export function resolveNotifySettings(config: ServerConfig['notifications'] | undefined, env: NodeJS.ProcessEnv = process.env): NotifySettings | null {
  if (!config?.webhookUrl) return null;
  let secret = env.TOKENWARDEN_WEBHOOK_SECRET || undefined;
  if (config.secretFile) {
    try {
      secret = readFileSync(config.secretFile, 'utf8').trim();
    } catch (err) {
      throw new ConfigError([`notifications.secretFile: cannot read ${config.secretFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
    }
    if (!secret) throw new ConfigError([`notifications.secretFile: ${config.secretFile} is empty`]);
  }
  const d = (v: string | number | undefined, fallback: string) => parseDuration(v ?? fallback)!;
  return {
    url: config.webhookUrl,
    secret,
    expiryWarningMs: d(config.expiryWarning, '7d'),
    unusedForMs: d(config.unusedFor, '30d'),
    repeatAfterMs: Math.max(d(config.repeatAfter, '24h'), 60_000),
    checkIntervalMs: Math.max(d(config.checkInterval, '5m'), 1000),
    timeoutMs: d(config.timeout, '10s'),
    retryAttempts: config.retryAttempts ?? 6,
    retryBackoffMs: Math.max(d(config.retryBackoff, '30s'), 100),
  };
}

function tokenFacts(t: LiveTokenRow, now: number) {
  return {
    id: t.id,
    name: t.name,
    actor: t.actor_name,
    managed: t.binding_id !== null,
    createdAt: iso(t.created_at),
    expiresAt: iso(t.expires_at),
    expiresInSeconds: Math.floor((t.expires_at - now) / 1000),
    lastUsedAt: iso(t.last_used_at),
  };
}

/**
 * The periodic checker: finds tokens about to expire without a binding to rotate them, tokens
 * gone unused, and failing rotations; puts one notice per subject, condition and window in the
 * outbox; and posts due notices to the webhook, retrying with exponential backoff. The outbox is
 * in the store, so a restart neither loses nor repeats a notice. Time comes from the Clock.
 */
export class Notifier {
  private readonly outbox: NotificationStore;
  private timer: NodeJS.Timeout | undefined;
  private lastCheck = Number.NEGATIVE_INFINITY;
  private readonly rotationFailuresSeen = new Map<string, number>();
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    readonly settings: NotifySettings,
  ) {
    this.outbox = new NotificationStore(store);
  }

  start(): void {
    const every = Math.min(this.settings.checkIntervalMs, this.settings.retryBackoffMs, 30_000);
    this.timer = setInterval(() => void this.tick().catch((err) => this.logger.warn({ err }, 'notification check failed')), every);
    this.timer.unref();
    void this.tick().catch((err) => this.logger.warn({ err }, 'notification check failed'));
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One round: evaluate the conditions when a check is due, then post what is due. Never overlaps itself. */
  tick(): Promise<void> {
    this.running ??= (async () => {
      try {
        const now = this.clock.now();
        if (now - this.lastCheck >= this.settings.checkIntervalMs) {
          await this.check(now);
          this.lastCheck = now;
        }
        await this.deliverDue();
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** For the controller: report a failed rotation with its reason (a plain sentence, never a secret). */
  async rotationFailed(binding: string, reason: string): Promise<boolean> {
    const now = this.clock.now();
    return this.enqueue('rotation.failed', binding, `${Math.floor(now / this.settings.repeatAfterMs)}`, now, {
      summary: `Rotation of binding ${binding} failed: ${reason}`,
      binding: { name: binding, reason },
    });
  }

  /**
   * A rotation that finished but protected nothing: the old token expired or was revoked before
   * the new one was confirmed, so consumers may have been refused meanwhile. Once per rotation.
   */
  async rotationUnconfirmed(binding: string, seq: number, outcome: string, reason: string): Promise<boolean> {
    const now = this.clock.now();
    return this.enqueue('rotation.unconfirmed', binding, `${seq}`, now, {
      summary: `Rotation ${seq} of binding ${binding} ended ${outcome}: ${reason}`,
      binding: { name: binding, seq, outcome, reason },
    });
  }

  /** `tokenwarden notify test`: posts one notice at once to prove the URL and the signature; not kept, not retried. */
  async sendTest(): Promise<{ delivered: boolean; error?: string }> {
    const now = this.clock.now();
    const id = randomUUID();
    const payload = JSON.stringify({ id, kind: 'test', at: iso(now), source: 'tokenwarden', summary: 'tokenwarden test notification' });
    const error = await this.post({ id, kind: 'test', payload });
    return error ? { delivered: false, error } : { delivered: true };
  }

  private async check(now: number): Promise<void> {
    const s = this.settings;
    for (const t of await unmanagedExpiringBefore(this.store, now, now + s.expiryWarningMs)) {
      await this.enqueue('token.expiring', t.id, String(t.expires_at), now, {
        summary: `Token ${t.id} (${t.name}) of ${t.actor_name} expires in ${formatDuration(t.expires_at - now)} and no binding rotates it`,
        token: tokenFacts(t, now),
      });
    }
    if (s.unusedForMs > 0) {
      // The same definition as `token unused` (managed tokens left out: their binding rotates them), every page.
      let after: UnusedCursor | undefined;
      for (;;) {
        const page = await unusedTokens(this.store, { now, cutoff: now - s.unusedForMs, includeManaged: false, limit: 500, ...(after ? { after } : {}) });
        for (const t of page) {
          const since = t.last_used_at ?? t.created_at;
          await this.enqueue('token.unused', t.id, String(since), now, {
            summary: `Token ${t.id} (${t.name}) of ${t.actor_name} has not been used for ${formatDuration(now - since)}; revoke it if nobody needs it (tokenwarden token unused --days ${Math.round(s.unusedForMs / 86_400_000)} --revoke)`,
            token: tokenFacts(t, now),
          });
        }
        const last = page.at(-1);
        if (page.length < 500 || !last) break;
        after = { createdAt: last.created_at, id: last.id };
      }
    }
    // Failed rotations, as counted by the controller: any increase since the last check is news.
    for (const v of (await this.metrics.rotations.get()).values) {
      if (v.labels.outcome !== 'failure' || v.labels.binding === undefined) continue;
      const binding = String(v.labels.binding);
      const seen = this.rotationFailuresSeen.get(binding) ?? 0;
      this.rotationFailuresSeen.set(binding, v.value);
      if (v.value > seen) {
        await this.enqueue('rotation.failed', binding, `${Math.floor(now / s.repeatAfterMs)}`, now, {
          summary: `Rotation of binding ${binding} failed ${v.value - seen} time(s) since the last check`,
          binding: { name: binding, failures: v.value - seen },
        });
      }
    }
  }

  private async enqueue(kind: NoticeKind, subject: string, window: string, now: number, facts: Record<string, unknown>): Promise<boolean> {
    const id = randomUUID();
    const payload = JSON.stringify({ id, kind, at: iso(now), source: 'tokenwarden', ...facts });
    const added = await this.outbox.enqueue({ id, dedup_key: `${kind}:${subject}:${window}`, kind, subject, payload, created_at: now, next_attempt_at: now });
    if (added) this.logger.info({ kind, subject }, 'notification queued');
    return added;
  }

  private async deliverDue(): Promise<void> {
    for (const row of await this.outbox.due(this.clock.now())) await this.deliver(row);
  }

  private async deliver(row: NotificationRow): Promise<{ delivered: boolean; error?: string }> {
    const s = this.settings;
    const now = this.clock.now();
    if (!(await this.outbox.claim(row, now + s.timeoutMs + 60_000))) return { delivered: false, error: 'taken by another replica' };
    const attempt = row.attempts + 1;
    const error = await this.post(row);
    if (!error) {
      await this.outbox.delivered(row.id, this.clock.now());
      this.metrics.notifications.inc({ kind: row.kind, outcome: 'sent' });
      return { delivered: true };
    }
    if (attempt >= s.retryAttempts) {
      await this.outbox.gaveUp(row.id, this.clock.now(), error);
      this.metrics.notifications.inc({ kind: row.kind, outcome: 'failed' });
      this.logger.warn({ kind: row.kind, subject: row.subject, attempts: attempt, error }, 'notification given up after all retries');
    } else {
      const delay = Math.min(s.retryBackoffMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
      await this.outbox.retryAt(row.id, this.clock.now() + delay, error);
      this.metrics.notifications.inc({ kind: row.kind, outcome: 'retry' });
      this.logger.info({ kind: row.kind, subject: row.subject, attempt, retryInMs: delay, error }, 'notification failed; will retry');
    }
    return { delivered: false, error };
  }

  /** Posts one notice; returns an error sentence or undefined. The URL is never logged (webhook URLs often embed a key). */
  private async post(row: Pick<NotificationRow, 'id' | 'kind' | 'payload'>): Promise<string | undefined> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'tokenwarden-notifier/0.1',
      'x-tokenwarden-event': row.kind,
      'x-tokenwarden-delivery': row.id,
    };
    if (this.settings.secret) headers[SIGNATURE_HEADER] = signBody(row.payload, this.settings.secret);
    try {
      const res = await fetch(this.settings.url, {
        method: 'POST',
        headers,
        body: row.payload,
        redirect: 'error',
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? undefined : `the webhook answered ${res.status}`;
    } catch (err) {
      const e = err as { name?: string; cause?: { code?: string } };
      if (e.name === 'TimeoutError') return `the webhook did not answer within ${formatDuration(this.settings.timeoutMs)}`;
      return `the webhook could not be reached (${e.cause?.code ?? e.name ?? 'error'})`;
    }
  }

  recent(limit?: number) {
    return this.outbox.recent(limit);
  }
}
