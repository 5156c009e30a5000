import { Command, CommanderError, Option } from 'commander';
import { ApiClient, CliError, EXIT, resolveClientSettings } from './client.js';
import type { OutputFormat } from './output.js';
import { registerAdminCommands } from './admin.js';
import { registerBindingCommands } from './bindings.js';
import { registerAgent } from './agent.js';
import { registerConfigCommands } from './config.js';
import { registerGate } from './gate.js';
import { registerServe } from './serve.js';
import { registerAdminRecover } from './recover.js';
import { registerDoctorCommand } from './doctor.js';
import { registerNotifyCommands } from './notify.js';
import { registerTokenCommands } from './tokens.js';

export function buildProgram(): Command {
  const program = new Command('tokenwarden')
    .description('mint, verify, deliver and rotate machine bearer tokens')
    .version('0.1.0')
    .option('--server <url>', 'tokenwarden server (env TOKENWARDEN_SERVER, default http://127.0.0.1:8080)')
    .option('--token <token>', 'your tokenwarden token (prefer env TOKENWARDEN_TOKEN: flags show in ps)')
    .option('--token-file <file>', 'read your token from a file (env TOKENWARDEN_TOKEN_FILE)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .showHelpAfterError()
    .exitOverride();

  const ctx = () => {
    const opts = program.opts<{ server?: string; token?: string; tokenFile?: string; output: OutputFormat }>();
    return { client: new ApiClient(resolveClientSettings(opts)), output: opts.output };
  };
  registerServe(program);
  registerAdminRecover(program);
  registerConfigCommands(program);
  registerGate(program);
  registerAgent(program);
  registerTokenCommands(program, ctx);
  registerAdminCommands(program, ctx);
  registerDoctorCommand(program, ctx);
  registerNotifyCommands(program, ctx);
  registerBindingCommands(program, ctx);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    if (err instanceof CliError) {
      process.stderr.write(`tokenwarden: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`tokenwarden: ${(err as Error).message}\n`);
    return EXIT.failure;
  }
}
