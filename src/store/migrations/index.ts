import type { Kysely, Migration, MigrationProvider } from 'kysely';
import * as m001 from './001_authority.js';
import * as m002 from './002_delivery.js';
import * as m003 from './003_sources.js';
import * as m004 from './004_notifications.js';
import * as m005 from './005_grant_changes.js';
import * as m006 from './006_token_parent.js';
import * as m007 from './007_binding_health.js';

export type Engine = 'sqlite' | 'postgres';
export interface MigrationContext {
  engine: Engine;
}

type Step = { up(db: Kysely<any>, ctx: MigrationContext): Promise<void> };

/** One migration history for both engines. Append new steps; never edit a shipped one. */
const STEPS: Record<string, Step> = {
  '001_authority': m001,
  '002_delivery': m002,
  '003_sources': m003,
  '004_notifications': m004,
  '005_grant_changes': m005,
  '006_token_parent': m006,
  '007_binding_health': m007,
};

export class InCodeMigrations implements MigrationProvider {
  constructor(private readonly ctx: MigrationContext) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    for (const [name, step] of Object.entries(STEPS)) out[name] = { up: (db) => step.up(db, this.ctx) };
    return out;
  }
}
