import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ResolvedConfig } from '../config/server-config.js';
import { STORE_RETRY_AFTER_SECONDS } from '../store/errors.js';
import { proxyTrust, requestOrigin } from '../verify/request-origin.js';
import { type Credential, type Decision, type Refusal, TWO_CREDENTIALS, type Requirement, challenge, decide, decideCached } from '../verify/decision.js';
import type { RequestOrigin } from '../verify/request-origin.js';
import type { Identity, Verifier } from '../verify/verifier.js';

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
 * or the configured header holding the bare token. Two Authorization headers (node:http keeps
 * only the first in `req.headers`, so `rawHeaders` is counted), two tokens in one header
 * ("Bearer a, Bearer b", "Bearer a b"), or two of the configured header → TWO_CREDENTIALS: a
 * proxy reading another one than we do would see another credential.
 */
export function credentialOf(req: Pick<IncomingMessage, 'headers' | 'rawHeaders'>, extraHeader?: string): Credential {
  const raw = req.rawHeaders;
  let auths = 0;
  let extras = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 13 && (k === 'authorization' || k === 'Authorization' || k.toLowerCase() === 'authorization')) auths++;
    else if (extraHeader !== undefined && k.length === extraHeader.length && k.toLowerCase() === extraHeader) extras++;
  }
  if (auths > 1 || extras > 1) return TWO_CREDENTIALS;
  const auth = req.headers.authorization;
  let bearer: string | undefined;
  if (auth && auth.length > 7 && (auth.startsWith('Bearer ') || auth.slice(0, 7).toLowerCase() === 'bearer ')) {
    bearer = auth.slice(7).trim();
    if (HAS_SEPARATOR.test(bearer)) return TWO_CREDENTIALS;
  }
  // Authorization: Bearer wins over the configured header, as before (the gate strips both).
  if (bearer === undefined && extraHeader && extras) {
    const v = req.headers[extraHeader];
    if (typeof v === 'string' && v) {
      const t = v.trim();
      if (HAS_SEPARATOR.test(t)) return TWO_CREDENTIALS;
      return t;
    }
  }
  return bearer || undefined;
}

/** A token68 (RFC 7235) holds no space and no comma; a value that does holds two credentials. */
const HAS_SEPARATOR = /[\s,]/;

/** The client address by the one source-address rule (src/verify/request-origin.ts). */
export function sourceOf(req: IncomingMessage, trusted: readonly string[]): RequestOrigin {
  return requestOrigin(req, proxyTrust(trusted));
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

interface PreparedResponse {
  headers: OutgoingHttpHeaders;
  body: string;
}

const preparedRefusals = new WeakMap<Refusal, PreparedResponse>();

/** Headers and body of a refusal, built once per distinct refusal. */
export function refusalResponse(d: Refusal): PreparedResponse {
  let r = preparedRefusals.get(d);
  if (r !== undefined) return r;
  const body = `${d.status === 403 ? 'forbidden' : d.status === 429 ? 'too many failed attempts' : d.status === 400 ? 'bad request' : 'unauthorized'}: ${d.description}\n`;
  r = {
    headers: {
      'www-authenticate': challenge(d),
      // nginx only passes 2xx/401/403 through auth_request; this lets its config map the rest.
      'x-error-status': String(d.status),
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      // Seconds left in the failure window (verify.failureWindow), from the limiter.
      ...(d.status === 429 ? { 'retry-after': String(d.retryAfter ?? 1) } : {}),
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
  const { header } = options;
  const trust = proxyTrust(options.trustedProxies);
  return (req: IncomingMessage, res: ServerResponse): void => {
    const source = requestOrigin(req, trust);
    const bearer = credentialOf(req, header);
    const requirement = requirementOf(req.url ?? '');
    const cached = decideCached(verifier, bearer, source, requirement);
    if (cached !== undefined) return answer(res, cached);
    decide(verifier, bearer, source, requirement).then(
      (d) => answer(res, d),
      () => {
        res.writeHead(503, {
          'content-type': 'text/plain; charset=utf-8',
          'x-error-status': '503',
          'retry-after': String(STORE_RETRY_AFTER_SECONDS),
          'content-length': String(UNAVAILABLE_BODY.length),
        });
        res.end(UNAVAILABLE_BODY);
      },
    );
  };
}
