import { readFileSync, statSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type SecureContextOptions, createSecureContext } from 'node:tls';
import { parseDuration } from './clock.js';
import type { Logger } from './log.js';

export interface TlsSettings {
  cert: string;
  key: string;
  reloadInterval?: string | number;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** Reads the pair and proves it is usable (parsable, key matches certificate) before it is served. */
export function loadCertificatePair(tls: Pick<TlsSettings, 'cert' | 'key'>): SecureContextOptions {
  const options = { cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
  createSecureContext(options); // throws on a bad PEM or a key that does not match the certificate
  return options;
}

function signature(path: string): string {
  const s = statSync(path); // follows symlinks: Kubernetes swaps the `..data` link of a Secret volume
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

/**
 * Keeps an HTTPS server on the current certificate. cert-manager (or anyone) replaces the
 * files; polling their metadata catches both in-place writes and Kubernetes' symlink swaps,
 * where fs.watch sees nothing. A half-written pair (new cert, old key) fails to load and is
 * retried on the next tick while the server keeps the last good one.
 */
export class CertificateReloader {
  private seen: string;
  private failedOn: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tls: TlsSettings,
    private readonly apply: (options: SecureContextOptions) => void,
    private readonly logger?: Logger,
  ) {
    this.seen = this.currentSignature();
  }

  start(intervalMs: number): void {
    this.timer ??= setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reloads if either file changed since the last successful load. Returns whether it did. */
  check(): boolean {
    let now: string;
    try {
      now = this.currentSignature();
    } catch {
      return false; // a file is missing for a moment during replacement
    }
    if (now === this.seen) return false;
    try {
      this.apply(loadCertificatePair(this.tls));
    } catch (err) {
      if (this.failedOn !== now) {
        this.failedOn = now;
        this.logger?.warn({ cert: this.tls.cert, key: this.tls.key, reason: (err as Error).message }, 'new TLS certificate or key cannot be used yet; keeping the previous one');
      }
      return false;
    }
    this.seen = now;
    this.failedOn = undefined;
    this.logger?.info({ cert: this.tls.cert }, 'TLS certificate reloaded');
    return true;
  }

  private currentSignature(): string {
    return `${signature(this.tls.cert)}|${signature(this.tls.key)}`;
  }
}

/**
 * How long an idle keep-alive connection stays open. Longer than the idle timeout of the
 * clients that keep connections to us (nginx upstream keepalive_timeout 60 s, Prometheus, the
 * gate's 30 s), so that the client closes first: a server that closes an idle connection just
 * as the client reuses it fails that request ("socket hang up", ECONNRESET).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 72_000;

/** `listen.keepAliveTimeout`, or the default. */
export function keepAliveTimeoutOf(config: { listen: { keepAliveTimeout?: string | number } }): number {
  return config.listen.keepAliveTimeout === undefined ? KEEP_ALIVE_TIMEOUT_MS : parseDuration(config.listen.keepAliveTimeout)!;
}

/**
 * Sets the keep-alive timeout on the node server itself (Fastify's own option is not applied
 * when a serverFactory builds the server), with the headers and request timeouts above it.
 */
export function applyKeepAlive(server: Server, keepAliveTimeoutMs = KEEP_ALIVE_TIMEOUT_MS): void {
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.headersTimeout = keepAliveTimeoutMs + 1000;
  if (server.requestTimeout > 0 && server.requestTimeout < server.headersTimeout) server.requestTimeout = server.headersTimeout;
}

/**
 * The node server under Fastify and the auth listener: plain HTTP, or HTTPS from `tls` with
 * the certificate reloaded in place (setSecureContext) so that no connection is dropped for a
 * renewal; keep-alive as applyKeepAlive sets it.
 */
export function createNodeServer(tls: TlsSettings | undefined, handler: Handler, logger?: Logger, keepAliveTimeoutMs = KEEP_ALIVE_TIMEOUT_MS): Server {
  if (!tls) {
    const plain = createServer(handler);
    applyKeepAlive(plain, keepAliveTimeoutMs);
    return plain;
  }
  const server = createHttpsServer(loadCertificatePair(tls), handler);
  applyKeepAlive(server as unknown as Server, keepAliveTimeoutMs);
  const reloader = new CertificateReloader(tls, (options) => server.setSecureContext(options), logger);
  reloader.start(parseDuration(tls.reloadInterval ?? '5s') || 5000);
  server.on('close', () => reloader.stop());
  return server as unknown as Server;
}
