import { Agent as HttpAgent, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Problem } from '../../errors.js';
import { credentialOf } from '../handler.js';
import { TWO_CREDENTIALS, TWO_CREDENTIALS_REFUSAL } from '../../verify/decision.js';
import { createNodeServer } from '../../tls.js';
import { normalizeIp, proxyTrust, requestOrigin } from '../../verify/request-origin.js';
import { type Logger, redactUrl } from '../../log.js';
import { agentOptions } from './remote-check.js';
import { type GateCheck, type GateVerdict, verdictOf } from './check.js';

export interface GateOptions {
  /** The exporter or service to protect, e.g. http://127.0.0.1:9100 */
  upstream: string;
  check: GateCheck;
  logger: Logger;
  /** Another header that carries the token (e.g. x-api-key); it is stripped too. */
  header?: string;
  /** Peers whose X-Forwarded-For is believed (a proxy in front of the gate); none by default. */
  trustedProxies?: readonly string[];
}

export interface Gate {
  server: Server;
  close(): Promise<void>;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) are for one connection only and never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Identity headers are the gate's to set: a client must not be able to send its own. */
const OURS = /^x-(tokenwarden-|auth-request-)/;

/**
 * `tokenwarden gate`: a small streaming reverse proxy that lets a request through to the
 * upstream only if its bearer token passes the same check as /auth. The credential never
 * reaches the upstream: Authorization (and the configured token header) are stripped.
 */
export function createGate(options: GateOptions): Gate {
  const upstream = new URL(options.upstream);
  const https = upstream.protocol === 'https:';
  // An idle timeout lets the agent honour the upstream's Keep-Alive: timeout=… hint (Node ignores it without one).
  const agent = https ? new HttpsAgent(agentOptions(256)) : new HttpAgent(agentOptions(256));
  const send = https ? httpsRequest : httpRequest;
  const prefix = upstream.pathname.replace(/\/+$/, '');
  const trust = proxyTrust(options.trustedProxies ?? []);
  const { check, logger, header } = options;

  function forwardedHeaders(req: IncomingMessage, identity: OutgoingHttpHeaders, clientIp: string | null): OutgoingHttpHeaders {
    const out: OutgoingHttpHeaders = {};
    const connectionListed = listedInConnection(req.headers);
    for (const name in req.headers) {
      if (name === 'authorization' || name === header || HOP_BY_HOP.has(name) || OURS.test(name) || connectionListed?.has(name)) continue;
      out[name] = req.headers[name];
    }
    const prior = req.headers['x-forwarded-for'];
    const peer = normalizeIp(req.socket.remoteAddress ?? clientIp ?? '');
    out['x-forwarded-for'] = typeof prior === 'string' && trust.trusts(peer) ? `${prior}, ${peer}` : peer;
    out['x-forwarded-proto'] ??= 'http';
    if (req.headers.host) out['x-forwarded-host'] ??= req.headers.host;
    out.host = upstream.host;
    return Object.assign(out, identity);
  }

  function badGateway(req: IncomingMessage, res: ServerResponse, detail: string, status = 502): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const p = new Problem(status === 502 ? 'bad-gateway' : 'unavailable', detail);
    const body = JSON.stringify(p.toBody(redactUrl(req.url ?? '/').split('?')[0]));
    res.writeHead(status, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  function forward(req: IncomingMessage, res: ServerResponse, verdict: GateVerdict & { allow: true }, clientIp: string | null): void {
    const out = send(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: prefix + (req.url ?? '/'),
        headers: forwardedHeaders(req, verdict.identity, clientIp),
        agent,
      },
      (answer) => {
        const headers: OutgoingHttpHeaders = {};
        const connectionListed = listedInConnection(answer.headers);
        for (const name in answer.headers) if (!HOP_BY_HOP.has(name) && !connectionListed?.has(name)) headers[name] = answer.headers[name];
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, headers);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
      },
    );
    out.on('error', (err: NodeJS.ErrnoException) => {
      logger.warn({ upstream: upstream.origin, code: err.code, method: req.method, url: redactUrl(req.url ?? '') }, 'upstream request failed');
      badGateway(req, res, `the upstream ${upstream.origin} did not answer (${err.code ?? err.message}); is the exporter running?`);
    });
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  }

  function act(req: IncomingMessage, res: ServerResponse, verdict: GateVerdict, clientIp: string | null): void {
    if (verdict.allow) return forward(req, res, verdict, clientIp);
    // The body is not read: drop it rather than keep the connection busy with it.
    req.resume();
    res.writeHead(verdict.status, verdict.headers);
    res.end(verdict.body);
  }

  const server = createNodeServer(undefined, (req, res) => {
    const source = requestOrigin(req, trust);
    const credential = credentialOf(req, header);
    if (credential === TWO_CREDENTIALS) return act(req, res, verdictOf(TWO_CREDENTIALS_REFUSAL), source.ip);
    let verdict: GateVerdict | Promise<GateVerdict>;
    try {
      verdict = check.check(credential, source);
    } catch (err) {
      return unavailable(req, res, err);
    }
    if (!(verdict instanceof Promise)) return act(req, res, verdict, source.ip);
    verdict.then(
      (v) => act(req, res, v, source.ip),
      (err) => unavailable(req, res, err),
    );
  });

  function unavailable(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    logger.warn({ err: err as Error, verifier: check.describe }, 'verification failed');
    req.resume();
    badGateway(req, res, `tokens cannot be verified right now (${check.describe} is not reachable)`, 503);
  }

  return {
    server,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      agent.destroy();
      await check.close();
    },
  };
}

function listedInConnection(headers: IncomingHttpHeaders): Set<string> | undefined {
  const c = headers.connection;
  if (!c || c === 'keep-alive' || c === 'close') return undefined;
  return new Set(c.split(',').map((s) => s.trim().toLowerCase()));
}

export function listenGate(gate: Gate, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    gate.server.once('error', reject);
    gate.server.listen(port, host, () => {
      const a = gate.server.address() as AddressInfo;
      resolve(`http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    });
  });
}
