import type { Kysely } from 'kysely';
import type { Store } from './store.js';

/** Sealed source state (migration 003). Values arrive sealed; this file never sees a plaintext. */
export interface SourceStateTable {
  key: string;
  value: string;
  updated_at: number;
}

/** The store half of sources/sealed-state.ts's SourceStateStore (matched by shape: the store imports nothing above it). */
export class DbSourceState {
  constructor(private readonly store: Store, private readonly now: () => number = Date.now) {}

  private get db(): Kysely<{ source_state: SourceStateTable }> {
    return this.store.kysely as unknown as Kysely<{ source_state: SourceStateTable }>;
  }

  async get(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('source_state').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }

  async put(key: string, sealed: string): Promise<void> {
    const updated_at = this.now();
    await this.db
      .insertInto('source_state')
      .values({ key, value: sealed, updated_at })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: sealed, updated_at }))
      .execute();
  }

  async delete(key: string): Promise<void> {
    await this.db.deleteFrom('source_state').where('key', '=', key).execute();
  }
}
