import { readFileSync, statSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type SecureContextOptions, createSecureContext } from 'node:tls';
import { parseDuration } from '../clock.js';
import type { Logger } from '../observe/log.js';

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
 * The node server under Fastify: plain HTTP, or HTTPS from `tls` with the certificate
 * reloaded in place (setSecureContext) so that no connection is dropped for a renewal.
 */
export function createNodeServer(tls: TlsSettings | undefined, handler: Handler, logger?: Logger): Server {
  if (!tls) return createServer(handler);
  const server = createHttpsServer(loadCertificatePair(tls), handler);
  const reloader = new CertificateReloader(tls, (options) => server.setSecureContext(options), logger);
  reloader.start(parseDuration(tls.reloadInterval ?? '5s') || 5000);
  server.on('close', () => reloader.stop());
  return server as unknown as Server;
}
