import { type Kysely, type Transaction, sql } from 'kysely';
import pg from 'pg';
import type { Logger } from '../log.js';
import type { Database } from './schema.js';

/**
 * Cache fan-out on PostgreSQL: the replica that revokes a token, or changes what an identity
 * holds (its roles, its own scopes, disabled, a role's scopes), sends NOTIFY in the same
 * transaction (delivered only if it commits); every replica LISTENs and drops the cached
 * verdicts at once. Payloads are public ids (a token id, an actor id or "*"), never a secret.
 */
export const REVOCATION_CHANNEL = 'tokenwarden_token_revoked';
export const GRANTS_CHANNEL = 'tokenwarden_grants_changed';

/** Queues the notification inside the caller's transaction; PostgreSQL delivers it on commit. */
export async function notifyRevoked(db: Kysely<Database> | Transaction<Database>, tokenId: string): Promise<void> {
  await sql`select pg_notify(${REVOCATION_CHANNEL}, ${tokenId})`.execute(db);
}

/** The same for a change of grants: one actor's id, or "*" when a role changed. */
export async function notifyGrantsChanged(db: Kysely<Database> | Transaction<Database>, actorId: string): Promise<void> {
  await sql`select pg_notify(${GRANTS_CHANNEL}, ${actorId})`.execute(db);
}

export interface RevocationListenerOptions {
  url: string;
  /** Called with each revoked token id. */
  onRevoked(tokenId: string): void;
  /** Called with the id of an actor whose grants changed, or "*" for any actor's (a role changed). */
  onGrantsChanged?(actorId: string): void;
  /**
   * Called after every (re)connection: notifications sent while the listener was away are
   * lost, so the caller re-reads recent revocations from the store.
   */
  onResync?(): Promise<void> | void;
  logger?: Logger;
  /** First and largest wait between reconnection attempts. */
  retryMs?: { min: number; max: number };
}

/** One dedicated connection that LISTENs, and comes back after the database or the network drops it. */
export class RevocationListener {
  private client: pg.Client | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private attempt = 0;
  private connectedOnce = false;

  constructor(private readonly options: RevocationListenerOptions) {}

  /** Whether the LISTEN connection is up right now. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Connects and listens; on failure it keeps retrying in the background and resolves anyway. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.options.url, keepAlive: true });
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = undefined;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (this.stopped) return;
      this.options.logger?.warn({ err: err ? { name: err.name, message: err.message } : undefined }, 'revocation listener lost its database connection; reconnecting');
      this.scheduleRetry();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (msg) => {
      if (!msg.payload) return;
      if (msg.channel === REVOCATION_CHANNEL) this.options.onRevoked(msg.payload);
      else if (msg.channel === GRANTS_CHANNEL) this.options.onGrantsChanged?.(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${REVOCATION_CHANNEL}; LISTEN ${GRANTS_CHANNEL}`);
    } catch (err) {
      onLost(err as Error);
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.attempt = 0;
    if (this.connectedOnce) this.options.logger?.info('revocation listener reconnected');
    this.connectedOnce = true;
    try {
      await this.options.onResync?.();
    } catch (err) {
      this.options.logger?.warn({ err: { name: (err as Error).name, message: (err as Error).message } }, 'revocation resync failed; the periodic reconcile will retry');
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopped) return;
    const { min, max } = this.options.retryMs ?? { min: 200, max: 5000 };
    const wait = Math.min(max, min * 2 ** this.attempt++);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, wait);
    this.retryTimer.unref();
  }
}
