import { loadConfig } from '../src/config/server-config.js';
import { createLogger } from '../src/log.js';
import { startTokenwarden } from '../src/server.js';

/** A tokenwarden server for the benchmark: its own process, store and cache settings from argv/env. */
const [port, store, cacheTtl, cacheSize, authPort] = process.argv.slice(2);
const config = loadConfig({
  env: {},
  overrides: {
    listen: { host: '127.0.0.1', port: Number(port) },
    store: { url: store },
    // failureLimit 0: case (3) measures parsing and refusing garbage, not the cheaper 429 after the limit.
    verify: { cacheTtl, cacheSize: Number(cacheSize), failureLimit: 0 },
    log: { level: 'warn' },
    ...(authPort ? { authListen: { host: '127.0.0.1', port: Number(authPort) } } : {}),
  },
});
const tw = await startTokenwarden(config, { logger: createLogger({ level: 'warn' }) });
process.stdout.write(`listening on ${tw.url}\n`);
process.on('SIGTERM', () => void tw.close().then(() => process.exit(0)));
