/** The CLI's version, printed by `--version` (and by the fast path in fast.ts). */
export const VERSION = '0.1.0';
