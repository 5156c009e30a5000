import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parseDuration } from '../clock.js';
import { Problem } from '../errors.js';
import { CliError, EXIT } from './client.cjs';
import { loadServeConfig } from './serve.js';

/**
 * `tokenwarden admin recover`: the way back in when every admin token is lost or expired (like
 * `vault operator generate-root`). It needs direct access to the store (the data dir or the
 * store URL), not the HTTP API: whoever can read the database owns tokenwarden anyway.
 */
export function registerAdminRecover(program: Command): void {
  const admin = program.command('admin').description('break-glass operations run on the host, with direct access to the store');
  admin
    .command('recover')
    .description('re-create or re-enable the "admin" identity and print a short-lived admin token once (audited as system.recover)')
    .option('--data-dir <dir>', 'the SQLite data directory (holding tokenwarden.db), e.g. .data')
    .option('--store <url>', 'SQLite file path or postgres:// URL, as for serve')
    .option('-c, --config <file>', 'the server configuration file (store.url, tokens.maxLifetime; env TOKENWARDEN_CONFIG)')
    .option('-e, --expires-in <duration>', "the token's lifetime", '1h')
    .action(async (o: { dataDir?: string; store?: string; config?: string; expiresIn: string }) => {
      if (o.dataDir && o.store) throw new CliError('give --data-dir or --store, not both', EXIT.usage);
      const lifetimeMs = parseDuration(o.expiresIn);
      if (lifetimeMs === undefined || lifetimeMs <= 0) throw new CliError(`--expires-in must be a positive duration such as "1h" or "15m", got "${o.expiresIn}"`, EXIT.usage);
      const storeUrl = o.dataDir ? join(o.dataDir, 'tokenwarden.db') : o.store;
      const config = await loadServeConfig({ config: o.config, store: storeUrl });
      const url = config.store.url;
      // Never create an empty store by a typo: the point is to get back into an existing one.
      if (!/^postgres(ql)?:/.test(url) && !existsSync(url.replace(/^sqlite:(\/\/)?/, ''))) {
        throw new CliError(`no tokenwarden store at ${url}; point --data-dir at the directory holding tokenwarden.db (or --store at the file)`, EXIT.usage);
      }
      const [{ createCore }, { createLogger }] = await Promise.all([import('../core.js'), import('../log.js')]);
      // Direct access to the store, through the same parts as the server (no HTTP, no fan-out: nothing here caches).
      const { authority, close } = await createCore(config, { logger: createLogger({ level: 'warn', stream: process.stderr }) });
      try {
        const created = await authority.recover({ lifetimeMs, by: `recover@${process.env.USER ?? 'host'}` });
        process.stdout.write(`${created.plaintext}\n`);
        process.stderr.write(
          `admin token ${created.token.id} for identity "admin"${created.actorCreated ? ' (re-created)' : created.actorEnabled ? ' (re-enabled)' : ''}, expires ${created.token.expiresAt}.\n` +
            'This is the only time it is shown. Create named admins with it, then revoke it: tokenwarden token revoke ' +
            `${created.token.id} --force\n`,
        );
      } catch (err) {
        if (err instanceof Problem) throw new CliError(`${err.extra.field ? `${err.extra.field === 'expiresIn' ? '--expires-in' : err.extra.field}: ` : ''}${err.detail}`, EXIT.usage);
        throw err;
      } finally {
        await close();
      }
    });
}
