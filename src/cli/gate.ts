import type { Command } from 'commander';
import { CliError, EXIT } from './client.cjs';

interface GateFlags {
  upstream: string;
  scope: string[];
  satisfy: string;
  listen: string;
  store?: string;
  config?: string;
  header?: string;
  cacheTtl: string;
  trustedProxy: string[];
}

export function registerGate(program: Command): void {
  program
    .command('gate')
    .description("protect another service (an exporter's /metrics) with a tokenwarden token check: a small reverse proxy")
    .requiredOption('--upstream <url>', 'the service to protect, e.g. http://127.0.0.1:9100')
    .option('--scope <scope>', 'scope the token must hold (repeatable)', (v: string, all: string[]) => [...all, v], [])
    .option('--satisfy <all|any>', 'whether every --scope is needed, or any one', 'all')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:9101')
    .option('--store <url>', 'verify against this store directly (SQLite file or postgres:// URL) instead of asking a server')
    .option('-c, --config <file>', 'with --store: YAML configuration for the verifier (cache, failure limit)')
    .option('--header <name>', 'another header that may carry the token, e.g. X-Api-Key')
    .option('--cache-ttl <duration>', 'asking a server: how long an allowed token is trusted before asking again', '5s')
    .option('--trusted-proxy <ip>', 'a proxy in front of the gate whose X-Forwarded-For is believed (repeatable)', (v: string, all: string[]) => [...all, v], [])
    .addHelpText('after', '\nWithout --store the gate asks the tokenwarden server given by --server (or TOKENWARDEN_SERVER) at its /auth endpoint.')
    .action(async (flags: GateFlags, cmd: Command) => {
      const { server } = cmd.optsWithGlobals<{ server?: string }>();
      const { parseDuration, systemClock } = await import('../clock.js');
      const listen = parseListen(flags.listen);
      const upstream = parseUrl('--upstream', flags.upstream);
      if (flags.satisfy !== 'all' && flags.satisfy !== 'any') throw new CliError(`--satisfy must be "all" or "any", got "${flags.satisfy}"`, EXIT.usage);
      if (flags.store && server) throw new CliError('give either --store (verify locally) or --server (ask a tokenwarden server), not both', EXIT.usage);
      const cacheTtlMs = parseDuration(flags.cacheTtl);
      if (cacheTtlMs === undefined) throw new CliError(`--cache-ttl must be a duration such as "5s", got "${flags.cacheTtl}"`, EXIT.usage);
      const requirement = { scopes: flags.scope.flatMap((s) => s.split(/[ ,]+/)).filter(Boolean), satisfy: flags.satisfy as 'all' | 'any' };

      const config = await loadGateConfig(flags);
      const [{ createGate, listenGate }, { createLogger }] = await Promise.all([import('../forward-auth/gate/proxy.js'), import('../log.js')]);
      const logger = createLogger({ level: config.log.level, name: 'tokenwarden-gate' });
      const check = flags.store
        ? await (await import('../forward-auth/gate/local-check.js')).localCheck(config, requirement, systemClock, logger)
        : (await import('../forward-auth/gate/remote-check.js')).remoteCheck({
            server: parseUrl('--server', server ?? process.env.TOKENWARDEN_SERVER ?? 'http://127.0.0.1:8080').toString(),
            requirement,
            cacheTtlMs,
            clock: systemClock,
          });
      const gate = createGate({ upstream: upstream.toString(), check, logger, header: flags.header?.toLowerCase(), trustedProxies: flags.trustedProxy });
      let url: string;
      try {
        url = await listenGate(gate, listen.host, listen.port);
      } catch (err) {
        await check.close();
        throw new CliError(`cannot listen on ${flags.listen}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.failure);
      }
      const needs = requirement.scopes.length ? `${requirement.scopes.join(requirement.satisfy === 'any' ? ' or ' : ' and ')}` : 'any valid token';
      process.stdout.write(`tokenwarden gate is listening on ${url}, forwarding to ${upstream.origin} (needs ${needs}; verifying with ${check.describe})\n`);
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        await gate.close();
        process.exit(0);
      };
      process.on('SIGTERM', () => void stop());
      process.on('SIGINT', () => void stop());
    });
}

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new CliError(`--listen must be host:port such as 127.0.0.1:9101, got "${text}"`, EXIT.usage);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function parseUrl(flag: string, text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(`${flag} must be a URL such as http://127.0.0.1:9100, got "${text}"`, EXIT.usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`${flag} must be an http:// or https:// URL, got "${text}"`, EXIT.usage);
  return url;
}

async function loadGateConfig(flags: GateFlags) {
  const { ConfigError, loadConfig } = await import('../config/server-config.js');
  try {
    return loadConfig({ file: flags.config ?? (flags.store ? process.env.TOKENWARDEN_CONFIG : undefined), overrides: { store: { url: flags.store } } });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}
