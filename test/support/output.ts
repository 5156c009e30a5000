import { appendFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Everything the suite writes (logs, databases, screenshots) lives here, for the leak check and for people. */
export const OUTPUT = resolve(process.env.TEST_OUTPUT ?? 'test-output');
export const LOG_DIR = join(OUTPUT, 'logs');
export const SECRETS_DIR = join(OUTPUT, 'secrets');
mkdirSync(LOG_DIR, { recursive: true });
mkdirSync(SECRETS_DIR, { recursive: true });

export function tempDir(prefix: string): string {
  mkdirSync(join(OUTPUT, 'tmp'), { recursive: true });
  return mkdtempSync(join(OUTPUT, 'tmp', `${prefix}-`));
}

/**
 * Every secret a test sees (minted tokens, upstream passwords, JWTs) is recorded here; the leak
 * check afterwards proves none of them reached a log line or an audit row.
 */
export function rememberSecret(secret: string): string {
  appendFileSync(join(SECRETS_DIR, `${process.pid}.txt`), `${secret}\n`);
  return secret;
}
