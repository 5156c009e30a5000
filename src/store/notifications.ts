import type { Store } from './store.js';
import type { NotificationTable } from './schema.js';

export type NotificationRow = NotificationTable;

/** Queries of the notification outbox. */
export class NotificationStore {
  constructor(private readonly store: Store) {}

  /** Adds a notice unless one with the same dedup key exists. Returns whether it was added. */
  async enqueue(row: Omit<NotificationRow, 'attempts' | 'delivered_at' | 'failed_at' | 'last_error'>): Promise<boolean> {
    const res = await this.store.kysely
      .insertInto('notifications')
      .values({ ...row, attempts: 0, delivered_at: null, failed_at: null, last_error: null })
      .onConflict((oc) => oc.column('dedup_key').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  due(now: number, limit = 50): Promise<NotificationRow[]> {
    return this.store.kysely
      .selectFrom('notifications')
      .selectAll()
      .where('delivered_at', 'is', null)
      .where('failed_at', 'is', null)
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .limit(limit)
      .execute();
  }

  /**
   * Takes a notice for one attempt: only the process whose update matched sends it, so several
   * replicas never post the same notice. The lease pushes the next attempt out in case this one dies.
   */
  async claim(row: NotificationRow, leaseUntil: number): Promise<boolean> {
    const res = await this.store.kysely
      .updateTable('notifications')
      .set({ next_attempt_at: leaseUntil, attempts: row.attempts + 1 })
      .where('id', '=', row.id)
      .where('next_attempt_at', '=', row.next_attempt_at)
      .where('attempts', '=', row.attempts)
      .where('delivered_at', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async delivered(id: string, at: number): Promise<void> {
    await this.store.kysely.updateTable('notifications').set({ delivered_at: at, last_error: null }).where('id', '=', id).execute();
  }

  async retryAt(id: string, at: number, error: string): Promise<void> {
    await this.store.kysely.updateTable('notifications').set({ next_attempt_at: at, last_error: error }).where('id', '=', id).execute();
  }

  async gaveUp(id: string, at: number, error: string): Promise<void> {
    await this.store.kysely.updateTable('notifications').set({ failed_at: at, last_error: error }).where('id', '=', id).execute();
  }

  recent(limit = 100): Promise<NotificationRow[]> {
    return this.store.kysely.selectFrom('notifications').selectAll().orderBy('created_at', 'desc').limit(limit).execute();
  }
}
