import { Command, CommanderError, Option } from 'commander';
import { ApiClient, CliError, EXIT, resolveClientSettings } from './client.cjs';
import { VERSION } from './fast.cjs';
import type { OutputFormat } from './output.cjs';

type Ctx = () => { client: ApiClient; output: OutputFormat };
type Register = (program: Command, ctx: Ctx) => void;

/**
 * The command modules, in the order the help lists them. Each is loaded only when one of its
 * top-level commands runs (or for the full help), and each command's action loads what it uses.
 * The commands that only talk to a server are CommonJS (.cts) and required; the others are ES
 * modules, imported with the services they start.
 */
const MODULES: { commands: string[]; load: () => Promise<Register> }[] = [
  { commands: ['serve'], load: async () => (await import('./serve.js')).registerServe },
  { commands: ['admin'], load: async () => (await import('./recover.js')).registerAdminRecover },
  { commands: ['config'], load: async () => (await import('./config-command.js')).registerConfigCommands },
  { commands: ['gate'], load: async () => (await import('./gate.js')).registerGate },
  { commands: ['agent'], load: async () => (await import('./agent.js')).registerAgent },
  { commands: ['token'], load: async () => (require('./tokens.cjs') as typeof import('./tokens.cjs')).registerTokenCommands },
  { commands: ['whoami', 'login', 'actor', 'role', 'scope', 'audit'], load: async () => (require('./admin.cjs') as typeof import('./admin.cjs')).registerAdminCommands },
  { commands: ['doctor'], load: async () => (await import('./doctor.js')).registerDoctorCommand },
  { commands: ['notify'], load: async () => (require('./notify.cjs') as typeof import('./notify.cjs')).registerNotifyCommands },
  { commands: ['binding'], load: async () => (require('./bindings.cjs') as typeof import('./bindings.cjs')).registerBindingCommands },
];

/** Global options that take a value, to find the command name in argv. */
const VALUE_OPTIONS = new Set(['--server', '--token', '--token-file', '-o', '--output']);

function commandName(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (VALUE_OPTIONS.has(a)) i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** The program; with `argv`, only the module of the command it names (all of them when it names none that is known). */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('tokenwarden')
    .description('mint, verify, deliver and rotate machine bearer tokens')
    .version(VERSION)
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
  const name = argv && commandName(argv.slice(2));
  const named = MODULES.filter((m) => name !== undefined && m.commands.includes(name));
  for (const register of await Promise.all((named.length ? named : MODULES).map((m) => m.load()))) register(program, ctx);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const program = await buildProgram(argv);
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
