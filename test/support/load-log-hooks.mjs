// Module hooks that append every resolved module URL to the file named by TOKENWARDEN_LOAD_LOG.
// Registered with `node --import <load-log.mjs>`; see test/cli-start.test.ts.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (process.env.TOKENWARDEN_LOAD_LOG) appendFileSync(process.env.TOKENWARDEN_LOAD_LOG, `${result.url}\n`);
  return result;
}
