import { Agent, type IncomingMessage, type ServerResponse, request } from 'node:http';
import { API_BODY_LIMIT, bodyTooLarge } from '../errors.js';
import type { Logger } from '../log.js';
import { frontPeerHeaders, isPeerHeader } from '../verify/peer.js';

/** Headers of one hop only (RFC 9110 §7.6.1), never passed on; `expect` is answered by the front itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']);

const BAD_GATEWAY = JSON.stringify({
  type: 'about:blank',
  title: 'Bad Gateway',
  status: 502,
  detail: 'the API of this tokenwarden is not answering (it may be restarting or shutting down); retry shortly',
});

/** Raw headers without the hop-by-hop ones, those the Connection header names, and (from outside) the front's own. */
function passable(raw: string[], dropPeer: boolean): string[] {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') for (const n of raw[i + 1]!.split(',')) (named ??= new Set()).add(n.trim().toLowerCase());
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) || (dropPeer && isPeerHeader(lower))) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

/**
 * The front's way to the app (listen.front: threads): every request that is not GET /auth
 * is streamed to the Fastify app on its private Unix socket and the answer streamed back —
 * method, path, headers (duplicates and case kept), body, status, every set-cookie. The
 * client's address and TLS-ness go along in the peer headers (peer.ts), which only the
 * private socket trusts; any a client sends are dropped here.
 */
export function createFrontProxy(socketPath: string, logger: Logger) {
  // Idle connections to the app are dropped after 4 s, before the app's own keep-alive timeout (Node's least is 5 s)
  // could close one just as it is reused, which would turn a request into a 502.
  const agent = new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, timeout: 4000 });
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    // Answered here: the app would refuse it too, but closing on a body still being piped can turn its 413 into a 502.
    if (Number(req.headers['content-length']) > API_BODY_LIMIT) {
      const body = JSON.stringify(bodyTooLarge().toBody((req.url ?? '').split('?')[0]));
      res.writeHead(413, { 'content-type': 'application/problem+json', 'content-length': String(Buffer.byteLength(body)), connection: 'close' });
      res.end(body);
      req.resume();
      return;
    }
    const headers = passable(req.rawHeaders, true);
    headers.push(...frontPeerHeaders(req));
    const upstream = request({ socketPath, agent, method: req.method, path: req.url, headers, setHost: false }, (answer) => {
      res.sendDate = false; // the app's Date header is passed on
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, passable(answer.rawHeaders, false));
      answer.pipe(res);
      answer.once('error', () => res.destroy());
    });
    upstream.once('error', (err) => {
      if (res.headersSent) return void res.destroy();
      logger.warn({ reason: err.message, method: req.method }, 'front: the API did not answer');
      res.writeHead(502, { 'content-type': 'application/problem+json', 'content-length': String(Buffer.byteLength(BAD_GATEWAY)), 'x-error-status': '502' });
      res.end(BAD_GATEWAY);
    });
    // A client that goes away takes its exchange with the app along.
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };
  return Object.assign(handler, { close: () => agent.destroy() });
}
