import type { Command } from 'commander';
import { CliError, EXIT } from './client.cjs';

/**
 * `tokenwarden agent`: sources → sinks, no API server. Long-running as a sidecar, or `--once`
 * from a cron job (exit 0 when every binding holds a fresh token, 1 otherwise).
 */
export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('keep tokens from upstreams (and from a remote tokenwarden) fresh in files and Secrets; no server')
    .option('-c, --config <file>', 'agent YAML configuration (env TOKENWARDEN_AGENT_CONFIG)')
    .option('--once', 'refresh what is due, revoke what is past its grace, print the state and exit (for cron jobs)')
    .option('--status', 'print the state recorded in the state file and exit (0 when every binding is healthy)')
    .action(async (opts: { config?: string; once?: boolean; status?: boolean }) => {
      const file = opts.config ?? process.env.TOKENWARDEN_AGENT_CONFIG;
      if (!file) throw new CliError('give the agent configuration with --config agent.yaml (or TOKENWARDEN_AGENT_CONFIG)', EXIT.usage);
      const [{ loadAgentConfig }, { ConfigError }] = await Promise.all([import('../agent/agent-config.js'), import('../config/server-config.js')]);
      let config;
      try {
        config = loadAgentConfig(file);
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage);
        throw err;
      }
      const { createLogger } = await import('../log.js');
      const { TokenAgent } = await import('../agent/agent.js');
      const logger = createLogger({ level: process.env.TOKENWARDEN_LOG_LEVEL ?? config.log.level, name: 'tokenwarden-agent', stream: process.stderr });
      let agent;
      try {
        agent = await TokenAgent.create(config, { logger });
      } catch (err) {
        throw new CliError(`cannot start the agent: ${(err as Error).message}`, EXIT.usage);
      }
      if (opts.status || opts.once) {
        const report = opts.once ? await agent.runOnce() : agent.report();
        await agent.close();
        for (const r of report) {
          const state = r.healthy ? 'ok' : r.valid ? 'failing (the last good token still serves)' : 'FAILING';
          process.stdout.write(`${r.binding}\t${state}\texpires ${r.expiresAt ?? 'never delivered'}${r.lastError ? `\t${r.lastError}` : ''}\n`);
        }
        if (!report.every((r) => r.healthy && r.valid)) throw new CliError(`${report.filter((r) => !(r.healthy && r.valid)).length} binding(s) need attention`, EXIT.failure);
        return;
      }
      agent.start();
      logger.info({ bindings: config.bindings.map((b) => b.name), state: config.state.file }, 'agent started');
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'agent stopping');
        await agent.close();
        process.exit(0);
      };
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
    });
}
