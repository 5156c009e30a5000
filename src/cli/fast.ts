import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { VERSION } from './version.js';

/**
 * `tokenwarden --version` and `tokenwarden --help` answered before the command parser is even
 * loaded (commander alone costs more than a whole `node -e 0`), so that they start like a native
 * tool. The help is the parser's own text, rendered at build time (write-help.ts) for output that
 * is not a terminal and has no colours; anything else takes the normal path (index.ts).
 * Returns false when the normal path must answer.
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
      help = readFileSync(new URL(HELP_FILE, import.meta.url), 'utf8');
    } catch {
      return false; // not built with `npm run build`: the parser renders it
    }
    process.stdout.write(help);
    return true;
  }
  return false;
}

/** Beside this module in dist/cli/, written by write-help.ts. */
export const HELP_FILE = './help.txt';
