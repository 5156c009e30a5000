import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { trustedProxyProblem } from '../config/trusted-proxies.js';
import { peerAddress } from './peer.js';

/**
 * The one source-address rule, used by the failure limit, last use, the audit log and the
 * request log alike (forward-auth on both ports, the API, the gate):
 *
 * take the peer address; if and only if the peer is a trusted proxy (`verify.trustedProxies`),
 * walk `X-Forwarded-For` from the right, skipping trusted hops, and take the first untrusted
 * one. A hop that is not an IP address makes the whole header worthless: the peer is used.
 * A proxy that appends (nginx `$proxy_add_x_forwarded_for`, Traefik, Caddy, ingress-nginx)
 * writes the address it saw at the right end, where a client cannot reach; whatever the
 * client wrote itself stays on the left and is never read.
 */
export interface ProxyTrust {
  trusts(ip: string): boolean;
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is `10.0.0.1`. */
export function normalizeIp(ip: string): string {
  return ip.length > 7 && ip.charCodeAt(0) === 58 /* : */ && ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

const compiled = new WeakMap<readonly string[], ProxyTrust>();

/** The trust of a `verify.trustedProxies` list (IPs and CIDR blocks), built once per list. */
export function proxyTrust(list: readonly string[]): ProxyTrust {
  let trust = compiled.get(list);
  if (trust !== undefined) return trust;
  const exact = new Set<string>();
  const blocks = new BlockList();
  let anyBlock = false;
  for (const entry of list) {
    if (trustedProxyProblem(entry) !== undefined) continue; // refused at configuration load
    const [addr, bits] = entry.split('/') as [string, string | undefined];
    if (bits === undefined) exact.add(normalizeIp(addr));
    else {
      blocks.addSubnet(normalizeIp(addr), Number(bits), isIP(normalizeIp(addr)) === 6 ? 'ipv6' : 'ipv4');
      anyBlock = true;
    }
  }
  trust = {
    trusts: anyBlock
      ? (ip) => exact.has(ip) || blocks.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4')
      : (ip) => exact.has(ip),
  };
  compiled.set(list, trust);
  return trust;
}

/** The client's address by the rule above; `peer` as the socket reports it, `xff` the raw header. */
export function clientAddress(peer: string | undefined | null, xff: string | string[] | undefined, trust: ProxyTrust): string | null {
  if (!peer) return null;
  const p = normalizeIp(peer);
  if (xff === undefined || !trust.trusts(p)) return p;
  const header = typeof xff === 'string' ? xff : xff.join(',');
  let end = header.length;
  let hop = p;
  while (end > 0) {
    const comma = header.lastIndexOf(',', end - 1);
    const raw = header.slice(comma + 1, end).trim();
    if (isIP(raw) === 0) return p;
    hop = normalizeIp(raw);
    if (!trust.trusts(hop)) return hop;
    end = comma < 0 ? 0 : comma;
  }
  // Every hop is a trusted proxy: the left-most one is as far as the chain can be believed.
  return hop;
}

export interface RequestOrigin {
  ip: string | null;
  userAgent: string | null;
}

/** Where a request comes from, by the one rule. */
export function requestOrigin(req: IncomingMessage, trust: ProxyTrust): RequestOrigin {
  const ua = req.headers['user-agent'];
  return { ip: clientAddress(peerAddress(req), req.headers['x-forwarded-for'], trust), userAgent: typeof ua === 'string' ? ua : null };
}
