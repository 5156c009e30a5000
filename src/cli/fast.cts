import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { join } from 'node:path';

/**
 * `tokenwarden --version` and `tokenwarden --help` answered before the command parser is even
 * loaded, so that they start like a native tool. This module and the entry (bin/tokenwarden.cjs)
 * are CommonJS: bringing up the ES module loader alone costs about a third of a `node -e 0`.
 * The help is the parser's own text, rendered at build time (write-help.ts) for output that is
 * not a terminal and has no colours; anything else takes the parser's path (main.cts).
 * Returns false when the parser must answer.
 */
export function answeredAtOnce(argv: readonly string[]): boolean {
  // Node >= 22.1 keeps compiled code between runs; a no-op where it does not exist.
  (nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();
  if (argv.length !== 3) return false;
  const arg = argv[2];
  if (arg === '--version' || arg === '-V') {
    process.stdout.write(`${VERSION}\n`);
    return true;
  }
  if ((arg === '--help' || arg === '-h') && !process.stdout.isTTY && process.env.FORCE_COLOR === undefined && process.env.CLICOLOR_FORCE === undefined) {
    let help: string;
    try {
      help = readFileSync(join(__dirname, HELP_FILE), 'utf8');
    } catch {
      return false; // not built with `npm run build`: the parser renders it
    }
    process.stdout.write(help);
    return true;
  }
  return false;
}

/** The CLI's version, printed by `--version` here and by the parser: package.json's (src/cli and dist/cli are both two folders below it). */
export const VERSION: string = (require('../../package.json') as { version: string }).version;

/** Beside this module in dist/cli/, written by write-help.ts. */
export const HELP_FILE = 'help.txt';
