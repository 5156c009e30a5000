import { join } from 'node:path';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/server-config.js';
import { type Core, createCore } from '../../src/core.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from './output.js';

/**
 * The core without HTTP (store, authority, verifier, fan-out: src/core.ts, the server's own
 * factory) on a fresh SQLite file, for tests of the rules and the verifier. The fan-out is not
 * started: a test drives changes through the authority's events, which reach the verifier anyway.
 */
export async function startTestCore(options: { clock?: Clock; config?: Record<string, Record<string, unknown>>; storeUrl?: string } = {}): Promise<Core> {
  const config = loadConfig({
    env: {},
    overrides: { store: { url: options.storeUrl ?? join(tempDir('core'), 'tokenwarden.db') }, ...options.config },
  });
  return createCore(config, { clock: options.clock, logger: createLogger({ level: 'silent' }) });
}
