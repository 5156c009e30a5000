import type { Kysely, Migration, MigrationProvider } from 'kysely';
import * as m001 from './001_authority.js';

export type Engine = 'sqlite' | 'postgres';
export interface MigrationContext {
  engine: Engine;
}

type Step = { up(db: Kysely<any>, ctx: MigrationContext): Promise<void> };

/** One migration history for both engines. Append new steps; never edit a shipped one. */
const STEPS: Record<string, Step> = {
  '001_authority': m001,
};

export class InCodeMigrations implements MigrationProvider {
  constructor(private readonly ctx: MigrationContext) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    for (const [name, step] of Object.entries(STEPS)) out[name] = { up: (db) => step.up(db, this.ctx) };
    return out;
  }
}
