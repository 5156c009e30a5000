import type { IncomingMessage } from 'node:http';

/**
 * The TCP peer of a request as the app knows it: the socket's remote address, or — for a
 * request that the front thread (listen.front: threads) passed over the app's private socket —
 * the address of the client connected to the front. Every rule about source addresses
 * (trusted proxies, the failure limit, last use) starts from this and nothing else.
 */
export interface Peer {
  address: string | null;
  /** The client's connection was TLS (terminated by the front, or by this server). */
  tls: boolean;
}

/** Internal headers from the front to the app; the front strips any that arrive from outside. */
export const PEER_HEADER = 'x-tokenwarden-peer';
export const PEER_TLS_HEADER = 'x-tokenwarden-peer-tls';

/** Set by adoptFrontPeer only; the log's request serializer (log.ts) reads it too. */
type FrontRequest = IncomingMessage & { tokenwardenPeer?: Peer };

export function peerOf(req: IncomingMessage): Peer {
  return (req as FrontRequest).tokenwardenPeer ?? { address: req.socket.remoteAddress ?? null, tls: (req.socket as { encrypted?: boolean }).encrypted === true };
}

/** peerOf(req).address without allocating: on the /auth hot path. */
export function peerAddress(req: IncomingMessage): string | null {
  const front = (req as FrontRequest).tokenwardenPeer;
  return front !== undefined ? front.address : (req.socket.remoteAddress ?? null);
}

/** True for a header name (any case) the front reserves for itself. */
export function isPeerHeader(name: string): boolean {
  return name.length >= PEER_HEADER.length && name.slice(0, PEER_HEADER.length).toLowerCase() === PEER_HEADER;
}

/**
 * On the app's private socket only: takes the front's peer headers off the request and
 * remembers them as its peer. Never call this for a listener that outsiders can reach.
 */
export function adoptFrontPeer(req: IncomingMessage): void {
  const address = req.headers[PEER_HEADER];
  const tls = req.headers[PEER_TLS_HEADER];
  delete req.headers[PEER_HEADER];
  delete req.headers[PEER_TLS_HEADER];
  (req as FrontRequest).tokenwardenPeer = { address: typeof address === 'string' && address ? address : null, tls: tls === '1' };
}

/** The headers the front adds for a request of this client. */
export function frontPeerHeaders(req: IncomingMessage): string[] {
  const out = [PEER_HEADER, req.socket.remoteAddress ?? ''];
  if ((req.socket as { encrypted?: boolean }).encrypted) out.push(PEER_TLS_HEADER, '1');
  return out;
}
