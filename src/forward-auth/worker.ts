import type { AddressInfo } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../clock.js';
import { createLogger } from '../log.js';
import { connect } from '../store/connect.js';
import { Store } from '../store/store.js';
import type { LastUseBatch } from '../verify/last-use.js';
import { VERIFY_RESULTS, Verifier, type VerifierOptions, type Vouch } from '../verify/verifier.js';
import { type ForwardAuthOptions, createForwardAuthHandler, isForwardAuthPath } from './handler.js';
import { createFrontProxy } from './front-proxy.js';
import { type TlsSettings, createNodeServer } from '../tls.js';

/** What the main thread hands the auth listener thread (see listener.ts). */
export interface AuthWorkerData {
  storeUrl: string;
  verifier: VerifierOptions;
  forwardAuth: ForwardAuthOptions;
  host: string;
  port: number;
  tls?: TlsSettings;
  /** listen.keepAliveTimeout, applied to this listener as to the main port. */
  keepAliveTimeoutMs: number;
  logLevel: string;
  /** One float64 per VERIFY_RESULTS entry, written only by this thread, read by the main thread's /metrics. */
  results: SharedArrayBuffer;
  /** The front of the main port (listen.front: threads): the app's private socket, where every other request goes. */
  upstream?: string;
  /** Several threads on one port (verify.threads), each with its own socket; Node >= 22.12 on Linux. */
  reusePort?: boolean;
  /** How this listener is named in its messages: 'the auth listener' or 'the front'. */
  name: string;
}

/** Cache events from the main thread: its own revocations and grant changes, and those other replicas announced. */
export type ToAuthWorker =
  | { type: 'invalidate'; tokenId: string }
  | { type: 'invalidate-actor'; actorId: string }
  | { type: 'revoked'; tokenId: string }
  /** A token another thread (or the API) found valid: spared by the shared failure limit here too. */
  | { type: 'vouch'; vouch: Vouch }
  | { type: 'close' };

export type FromAuthWorker =
  | { type: 'listening'; url: string; port: number }
  | { type: 'failed'; message: string }
  | { type: 'closed' }
  /** Last uses seen here: the main thread writes them, so this thread never writes to the store on its event loop. */
  | { type: 'last-use'; batch: LastUseBatch }
  /** A token this thread found valid in the store: the main thread passes it to the others. */
  | { type: 'vouched'; vouch: Vouch }
  /** One JSON log line (already redacted), written by the main thread's logger so that all lines go where it writes. */
  | { type: 'log'; line: string };

/**
 * The auth listener thread: its own store connection, verifier and caches, serving only
 * GET /auth. It lives in its own V8 isolate so that the hot path's code stays optimised for
 * this one job, untouched by the API, the controller and the libraries of the main thread.
 */
async function main(data: AuthWorkerData, port: NonNullable<typeof parentPort>): Promise<void> {
  const send = (m: FromAuthWorker) => port.postMessage(m);
  const logger = createLogger({ level: data.logLevel, name: 'tokenwarden-auth', stream: { write: (line: string) => send({ type: 'log', line }) } });
  let store: Store;
  try {
    store = new Store(await connect(data.storeUrl, { poolSize: 2 }));
  } catch (err) {
    send({ type: 'failed', message: `${data.name} cannot open the store: ${(err as Error).message}` });
    return;
  }
  const verifier = new Verifier(store, systemClock, data.verifier, {
    recordLastUse: async (batch) => send({ type: 'last-use', batch }),
  });
  const counts = new Float64Array(data.results);
  const slot = Object.fromEntries(VERIFY_RESULTS.map((r, i) => [r, i])) as Record<(typeof VERIFY_RESULTS)[number], number>;
  verifier.onResult = (r) => void counts[slot[r]]++;
  verifier.lastUse.start();
  verifier.onVouch((vouch) => send({ type: 'vouched', vouch }));
  const handle = createForwardAuthHandler(verifier, data.forwardAuth);
  const proxy = data.upstream ? createFrontProxy(data.upstream, logger) : undefined;
  const server = createNodeServer(
    data.tls,
    (req, res) => {
      if (isForwardAuthPath(req.url ?? '')) return handle(req, res);
      if (proxy) return proxy(req, res);
      const body = 'this listener serves only GET /auth; the API and the UI are on the main port\n';
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(body.length) });
      res.end(body);
    },
    logger,
    data.keepAliveTimeoutMs,
  );

  const close = async () => {
    await new Promise<void>((done) => {
      server.close(() => done());
      server.closeIdleConnections();
    });
    proxy?.close();
    await verifier.lastUse.stop();
    await store.close();
    send({ type: 'closed' });
    port.close();
  };
  port.on('message', (m: ToAuthWorker) => {
    if (m.type === 'invalidate') verifier.invalidate(m.tokenId);
    else if (m.type === 'invalidate-actor') verifier.invalidateActor(m.actorId);
    else if (m.type === 'revoked') verifier.markRevoked(m.tokenId);
    else if (m.type === 'vouch') verifier.vouch(m.vouch);
    else if (m.type === 'close') void close();
  });

  server.once('error', (err: NodeJS.ErrnoException) => {
    send({ type: 'failed', message: `${data.name} cannot listen on ${data.host}:${data.port}: ${err.code ?? err.message}` });
    void verifier.lastUse.stop().then(() => store.close()).finally(() => port.close());
  });
  server.listen({ port: data.port, host: data.host, ...(data.reusePort ? { reusePort: true } : {}) }, () => {
    const { address, port: bound } = server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    send({ type: 'listening', url: `${data.tls ? 'https' : 'http'}://${host}:${bound}`, port: bound });
  });
}

if (parentPort) void main(workerData as AuthWorkerData, parentPort);
