import { writeFileSync } from 'node:fs';
import { HELP_FILE } from './fast.cjs';
import { buildProgram } from './main.cjs';

/**
 * Run by `npm run build`: writes the top-level help as the parser prints it to a pipe (80 columns,
 * no colours), for the fast path of `tokenwarden --help` (fast.ts).
 */
const program = await buildProgram();
program.configureOutput({ getOutHelpWidth: () => 80, getOutHasColors: () => false });
writeFileSync(new URL(HELP_FILE, import.meta.url), program.helpInformation());
