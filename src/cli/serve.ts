import { writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT } from './client.cjs';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the tokenwarden server (embedded SQLite by default)')
    .option('-c, --config <file>', 'YAML configuration file (env TOKENWARDEN_CONFIG)')
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--port <port>', 'port to listen on (default 8080)')
    .option('--store <url>', 'SQLite file path or postgres:// URL (default .data/tokenwarden.db)')
    .option('--bootstrap-token-file <file>', 'write the first admin token to this file (mode 0600) instead of printing it')
    .action(async (opts: { config?: string; host?: string; port?: string; store?: string; bootstrapTokenFile?: string }) => {
      const config = await loadServeConfig(opts);
      // Loaded here so that short CLI commands do not pay for the server's imports.
      const { startTokenwarden } = await import('../server.js');
      const tw = await startTokenwarden(config);
      const out = process.stdout;
      // The credential file is written before "listening" is printed, so whoever waits for that line finds it.
      const file = opts.bootstrapTokenFile ?? process.env.TOKENWARDEN_BOOTSTRAP_TOKEN_FILE;
      if (tw.bootstrap && file) writeFileSync(file, `${tw.bootstrap.plaintext}\n`, { mode: 0o600 });
      out.write(`tokenwarden is listening on ${tw.url}\n`);
      out.write(`web UI: ${tw.url}/ui/   API: ${tw.url}/api/v1 (OpenAPI at /api/v1/openapi.json)\n`);
      if (tw.authUrl) out.write(`forward auth only (authListen): ${tw.authUrl}/auth\n`);
      out.write(`data: ${tw.ctx.store.location} (${tw.ctx.store.engine})\n`);
      if (tw.bootstrap) {
        const b = tw.bootstrap.token;
        const dataDir = tw.ctx.store.engine === 'sqlite' ? dirname(tw.ctx.store.location) : null;
        const shown = file
          ? `first admin token written to ${file} (mode 0600); it is not shown again\n`
          : `\nFirst admin token for identity "admin" (shown once, never again; store it now):\n\n  ${tw.bootstrap.plaintext}\n\n`;
        out.write(
          shown +
            `It expires ${b.expiresAt} (tokens.bootstrapLifetime). Create named admins and revoke it:\n` +
            `  export TOKENWARDEN_TOKEN=<the first admin token>\n  tokenwarden whoami\n` +
            `  tokenwarden actor create alice@example.com --role admin\n` +
            `  tokenwarden token create --actor alice@example.com --name laptop --scope admin:token,actor.manage,role.manage,audit.read,binding.manage,binding.read --expires-in 30d\n` +
            `  tokenwarden token revoke ${b.id} --force\n` +
            `Then, for a scraper: tokenwarden actor create bot-prometheus --role metrics-read\n` +
            `  tokenwarden token create --actor bot-prometheus --name scrape --scope metrics.read --expires-in 30d\n` +
            `Every admin token lost? On this host: tokenwarden admin recover ${dataDir ? `--data-dir ${dataDir}` : '--store <store url>'}\n\n`,
        );
      }
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        tw.ctx.logger.info({ signal }, 'shutting down');
        await tw.close();
        process.exit(0);
      };
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
    });
}

export async function loadServeConfig(opts: { config?: string; host?: string; port?: string; store?: string }) {
  if (opts.port !== undefined && !/^\d+$/.test(opts.port)) throw new CliError(`--port must be a number, got "${opts.port}"`, EXIT.usage);
  const { ConfigError, loadConfig } = await import('../config/server-config.js');
  try {
    return loadConfig({
      file: opts.config ?? process.env.TOKENWARDEN_CONFIG,
      overrides: {
        listen: { host: opts.host, port: opts.port === undefined ? undefined : Number(opts.port) },
        store: { url: opts.store },
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}
