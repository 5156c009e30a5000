import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/server-config.js';
import type { AppContext } from '../../src/http/context.js';
import { createLogger } from '../../src/log.js';
import { type Tokenwarden, startTokenwarden } from '../../src/server.js';
import { LOG_DIR, rememberSecret, tempDir } from './output.js';

export interface TestServer {
  tw: Tokenwarden;
  url: string;
  adminToken: string;
  dbPath: string;
  logFile: string;
  /** Calls the API; returns status, parsed body and headers. */
  api(method: string, path: string, body?: unknown, token?: string | null, headers?: Record<string, string>): Promise<ApiResult>;
  close(): Promise<void>;
}

export interface ApiResult {
  status: number;
  body: any;
  headers: Headers;
}

export interface TestServerOptions {
  clock?: Clock;
  dbPath?: string;
  storeUrl?: string;
  config?: Record<string, Record<string, unknown>>;
  plugins?: AppContext['plugins'];
  /** Delivery controller knobs, e.g. { autoStart: false } to drive it with controller.tick(). */
  delivery?: import('../../src/delivery/index.js').DeliveryOptions;
  /** Reuse an admin token (after a restart on the same store). */
  adminToken?: string;
}

/** A real tokenwarden (real SQLite file, real HTTP on 127.0.0.1) inside the test process. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dbPath = options.dbPath ?? join(tempDir('db'), 'tokenwarden.db');
  const config = loadConfig({
    env: {},
    overrides: {
      listen: { host: '127.0.0.1', port: 0 },
      store: { url: options.storeUrl ?? dbPath },
      log: { level: 'info' },
      ...options.config,
      // Tests move their clocks by days with the first admin token: it lives as long as any token may, unless a test says otherwise.
      tokens: { bootstrapLifetime: options.config?.tokens?.maxLifetime ?? '365d', ...options.config?.tokens },
    },
  });
  const logFile = join(LOG_DIR, `server-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.log`);
  const stream = createWriteStream(logFile);
  const tw = await startTokenwarden(config, {
    clock: options.clock,
    logger: createLogger({ level: 'info', stream }),
    plugins: options.plugins,
    delivery: options.delivery,
  });
  const adminToken = tw.bootstrap ? rememberSecret(tw.bootstrap.plaintext) : options.adminToken;
  if (!adminToken) throw new Error('store was already bootstrapped: pass adminToken');
  const url = tw.url;
  return {
    tw,
    url,
    adminToken,
    dbPath,
    logFile,
    api: (method, path, body, token = adminToken, headers = {}) => callApi(url, method, path, body, token, headers),
    async close() {
      await tw.close();
      await new Promise((r) => stream.end(r));
    },
  };
}

export async function callApi(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string | null,
  headers: Record<string, string> = {},
): Promise<ApiResult> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  if (parsed && typeof parsed === 'object' && typeof (parsed as { token?: unknown }).token === 'string') {
    rememberSecret((parsed as { token: string }).token);
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Creates an identity and a token for it; returns the plaintext. */
export async function mintFor(server: TestServer, actor: string, scopes: string[], extra: Record<string, unknown> = {}): Promise<{ token: string; id: string }> {
  const a = await server.api('GET', `/api/v1/actors/${actor}`);
  if (a.status === 404) {
    const created = await server.api('POST', '/api/v1/actors', { name: actor, kind: actor.startsWith('bot-') ? 'service' : 'user', scopes });
    if (created.status !== 201) throw new Error(`actor create failed: ${JSON.stringify(created.body)}`);
  }
  const res = await server.api('POST', '/api/v1/tokens', { actor, name: `t-${Math.random().toString(36).slice(2, 8)}`, scopes, ...extra });
  if (res.status !== 201) throw new Error(`token create failed: ${JSON.stringify(res.body)}`);
  return { token: res.body.token, id: res.body.id };
}
