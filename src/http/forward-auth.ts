import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ResolvedConfig } from '../config/config.js';
import { peerAddress } from './peer.js';
import { type Identity, type Source, type Verification, type Verifier, hasScopes } from '../verify/verifier.js';

export interface Requirement {
  scopes: string[];
  satisfy: 'all' | 'any';
}

export interface ForwardAuthOptions {
  /** Another header to read the token from, besides `Authorization: Bearer` (lower case, as Node keys headers). */
  header?: string;
  trustedProxies: readonly string[];
}

/** Where the token and the client address are read from, as the configuration states it. */
export function forwardAuthOptions(config: Pick<ResolvedConfig, 'verify'>): ForwardAuthOptions {
  return { header: config.verify.header?.toLowerCase(), trustedProxies: config.verify.trustedProxies };
}

/**
 * Reads the bearer token: `Authorization: Bearer …` (scheme case-insensitive, as RFC 6750),
 * or the configured header holding the bare token.
 */
export function bearerFrom(headers: IncomingMessage['headers'], extraHeader?: string): string | undefined {
  const auth = headers.authorization;
  if (auth && auth.length > 7 && (auth.startsWith('Bearer ') || auth.slice(0, 7).toLowerCase() === 'bearer ')) return auth.slice(7).trim();
  if (extraHeader) {
    const v = headers[extraHeader];
    if (typeof v === 'string' && v) return v.trim();
  }
  return undefined;
}

/** The client behind a trusted proxy (nginx, Caddy, Traefik) is the first X-Forwarded-For hop, else X-Real-IP. */
export function sourceOf(req: IncomingMessage, trusted: readonly string[]): Source {
  const peer = peerAddress(req);
  let ip = peer;
  if (peer && trusted.includes(peer)) {
    const xff = req.headers['x-forwarded-for'];
    const real = req.headers['x-real-ip'];
    if (typeof xff === 'string' && xff) ip = xff.split(',')[0]!.trim();
    else if (typeof real === 'string' && real) ip = real.trim();
  }
  const ua = req.headers['user-agent'];
  return { ip, userAgent: typeof ua === 'string' ? ua : null };
}

/** `/auth` or `/auth?…`: the requests the forward-auth handler answers, ahead of any framework. */
export function isForwardAuthPath(url: string): boolean {
  return url.startsWith('/auth') && (url.length === 5 || url.charCodeAt(5) === 63 /* ? */);
}

const requirementCache = new Map<string, Requirement>();
const NO_REQUIREMENT: Requirement = Object.freeze({ scopes: [], satisfy: 'all' as const });

/** `?scope=a&scope=b,c&satisfy=any` → requirement; memoised per distinct URL (a proxy sends few). */
export function requirementOf(url: string): Requirement {
  let req = requirementCache.get(url);
  if (req !== undefined) return req;
  const q = url.indexOf('?');
  if (q < 0) return NO_REQUIREMENT;
  const params = new URLSearchParams(url.slice(q + 1));
  const scopes = params.getAll('scope').flatMap((s) => s.split(/[ ,]+/)).filter(Boolean);
  req = Object.freeze({ scopes, satisfy: params.get('satisfy') === 'any' ? ('any' as const) : ('all' as const) });
  if (requirementCache.size < 10_000) requirementCache.set(url, req);
  return req;
}

export function identityHeaders(identity: Identity): Record<string, string> {
  return {
    'x-tokenwarden-actor': identity.actorName,
    'x-tokenwarden-actor-kind': identity.actorKind,
    'x-tokenwarden-token-id': identity.tokenId,
    'x-tokenwarden-scopes': identity.scopes.join(' '),
    'x-auth-request-user': identity.actorName,
    // Lets a caching client (the gate in remote mode) never keep an answer past the token's expiry.
    'x-tokenwarden-expires-at': String(Math.floor(identity.expiresAt / 1000)),
  };
}

const REALM = 'realm="tokenwarden"';

export type Refusal = { status: 401 | 403 | 429; error: string; description: string; scope?: string };
export type Decision = { status: 200; identity: Identity } | Refusal;

/** Verdicts are mostly shared constants (see Verifier), so their decisions can be too. */
const refusalOf = new WeakMap<Verification, Refusal>();
const allowedOf = new WeakMap<Identity, Decision>();

/** The verdict plus the scope requirement → what to answer. */
export function toDecision(verifier: Verifier, v: Verification, requirement: Requirement): Decision {
  if (!v.ok) {
    let d = refusalOf.get(v);
    if (d === undefined) {
      d =
        v.reason === 'rate_limited'
          ? { status: 429, error: 'rate_limited', description: v.detail }
          : { status: 401, error: v.reason === 'missing' ? '' : 'invalid_token', description: v.detail };
      refusalOf.set(v, d);
    }
    return d;
  }
  const missing = hasScopes(v.identity, requirement.scopes, requirement.satisfy);
  if (missing.length) {
    verifier.onResult('insufficient_scope');
    return {
      status: 403,
      error: 'insufficient_scope',
      description: `the token lacks ${requirement.satisfy === 'any' ? 'any of ' : ''}${missing.join(' ')}`,
      scope: requirement.scopes.join(' '),
    };
  }
  let d = allowedOf.get(v.identity);
  if (d === undefined) allowedOf.set(v.identity, (d = { status: 200, identity: v.identity }));
  return d;
}

/** The decision when it needs no I/O (cached, malformed, rate limited); `undefined` when the store must be asked. */
export function decideCached(verifier: Verifier, bearer: string | undefined, source: Source, requirement: Requirement): Decision | undefined {
  const v = verifier.verifyCached(bearer, source);
  return v === undefined ? undefined : toDecision(verifier, v, requirement);
}

export async function decide(verifier: Verifier, bearer: string | undefined, source: Source, requirement: Requirement): Promise<Decision> {
  return toDecision(verifier, await verifier.verify(bearer, source), requirement);
}

/** RFC 6750 §3 challenge. */
export function challenge(d: Refusal): string {
  if (!d.error) return `Bearer ${REALM}`;
  let out = `Bearer ${REALM}, error="${d.error === 'rate_limited' ? 'invalid_request' : d.error}", error_description="${d.description.replace(/"/g, "'")}"`;
  if (d.scope) out += `, scope="${d.scope}"`;
  return out;
}

interface PreparedResponse {
  headers: OutgoingHttpHeaders;
  body: string;
}

const preparedRefusals = new WeakMap<Refusal, PreparedResponse>();

/** Headers and body of a refusal, built once per distinct refusal. */
export function refusalResponse(d: Refusal): PreparedResponse {
  let r = preparedRefusals.get(d);
  if (r !== undefined) return r;
  const body = `${d.status === 403 ? 'forbidden' : d.status === 429 ? 'too many failed attempts' : 'unauthorized'}: ${d.description}\n`;
  r = {
    headers: {
      'www-authenticate': challenge(d),
      // nginx only passes 2xx/401/403 through auth_request; this lets its config map the rest.
      'x-error-status': String(d.status),
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      ...(d.status === 429 ? { 'retry-after': '60' } : {}),
    },
    body,
  };
  preparedRefusals.set(d, r);
  return r;
}

const preparedAllowed = new WeakMap<Identity, OutgoingHttpHeaders>();

/** Identity headers of a 200, built once per cached identity. */
export function allowedHeaders(identity: Identity): OutgoingHttpHeaders {
  let h = preparedAllowed.get(identity);
  if (h === undefined) preparedAllowed.set(identity, (h = { ...identityHeaders(identity), 'content-length': '0' }));
  return h;
}

function answer(res: ServerResponse, d: Decision): void {
  if (d.status === 200) {
    res.writeHead(200, allowedHeaders(d.identity));
    res.end();
    return;
  }
  const r = refusalResponse(d);
  res.writeHead(d.status, r.headers);
  res.end(r.body);
}

const UNAVAILABLE_BODY = 'verification is unavailable (store not reachable)\n';

/**
 * GET /auth for nginx auth_request, Traefik ForwardAuth, Caddy forward_auth and Envoy ext_authz
 * (HTTP). Served on the raw node:http path, ahead of the framework, because every request of
 * the services behind the proxy pays for it; a cached token is answered synchronously.
 */
export function createForwardAuthHandler(verifier: Verifier, options: ForwardAuthOptions) {
  const { header, trustedProxies } = options;
  return (req: IncomingMessage, res: ServerResponse): void => {
    const source = sourceOf(req, trustedProxies);
    const bearer = bearerFrom(req.headers, header);
    const requirement = requirementOf(req.url ?? '');
    const cached = decideCached(verifier, bearer, source, requirement);
    if (cached !== undefined) return answer(res, cached);
    decide(verifier, bearer, source, requirement).then(
      (d) => answer(res, d),
      () => {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'x-error-status': '503', 'content-length': String(UNAVAILABLE_BODY.length) });
        res.end(UNAVAILABLE_BODY);
      },
    );
  };
}
