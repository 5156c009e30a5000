import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Identity, type Source, type Verifier, hasScopes } from '../verify/verifier.js';

export interface Requirement {
  scopes: string[];
  satisfy: 'all' | 'any';
}

export interface ForwardAuthOptions {
  /** Another header to read the token from, besides `Authorization: Bearer`. */
  header?: string;
  trustedProxies: readonly string[];
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
  const peer = req.socket.remoteAddress ?? null;
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

const requirementCache = new Map<string, Requirement>();

/** `?scope=a&scope=b,c&satisfy=any` → requirement; memoised per distinct query string (there are few). */
export function requirementOf(url: string): Requirement {
  const q = url.indexOf('?');
  if (q < 0) return { scopes: [], satisfy: 'all' };
  const query = url.slice(q + 1);
  let req = requirementCache.get(query);
  if (!req) {
    const params = new URLSearchParams(query);
    const scopes = params.getAll('scope').flatMap((s) => s.split(/[ ,]+/)).filter(Boolean);
    req = { scopes, satisfy: params.get('satisfy') === 'any' ? 'any' : 'all' };
    if (requirementCache.size < 10_000) requirementCache.set(query, req);
  }
  return req;
}

export function identityHeaders(identity: Identity): Record<string, string> {
  return {
    'x-tokenwarden-actor': identity.actorName,
    'x-tokenwarden-actor-kind': identity.actorKind,
    'x-tokenwarden-token-id': identity.tokenId,
    'x-tokenwarden-scopes': identity.scopes.join(' '),
    'x-auth-request-user': identity.actorName,
  };
}

const REALM = 'realm="tokenwarden"';

export type Decision =
  | { status: 200; identity: Identity }
  | { status: 401 | 403 | 429; error: string; description: string; scope?: string };

export async function decide(verifier: Verifier, bearer: string | undefined, source: Source, requirement: Requirement): Promise<Decision> {
  const v = await verifier.verify(bearer, source);
  if (!v.ok) {
    if (v.reason === 'rate_limited') return { status: 429, error: 'rate_limited', description: v.detail };
    return { status: 401, error: v.reason === 'missing' ? '' : 'invalid_token', description: v.detail };
  }
  const missing = hasScopes(v.identity, requirement.scopes, requirement.satisfy);
  if (missing.length) {
    verifier.onResult('insufficient_scope');
    return {
      status: 403,
      error: 'insufficient_scope',
      description: `the token lacks ${requirement.satisfy === 'any' ? 'any of' : ''} ${missing.join(' ')}`.replace('  ', ' '),
      scope: requirement.scopes.join(' '),
    };
  }
  return { status: 200, identity: v.identity };
}

/** RFC 6750 §3 challenge. */
export function challenge(d: Exclude<Decision, { status: 200 }>): string {
  if (!d.error) return `Bearer ${REALM}`;
  let out = `Bearer ${REALM}, error="${d.error === 'rate_limited' ? 'invalid_request' : d.error}", error_description="${d.description.replace(/"/g, "'")}"`;
  if (d.scope) out += `, scope="${d.scope}"`;
  return out;
}

/**
 * GET /auth for nginx auth_request, Traefik ForwardAuth, Caddy forward_auth and Envoy ext_authz
 * (HTTP). Served on the raw node:http path, ahead of the framework, because every request of
 * the services behind the proxy pays for it.
 */
export function createForwardAuthHandler(verifier: Verifier, options: ForwardAuthOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const source = sourceOf(req, options.trustedProxies);
    decide(verifier, bearerFrom(req.headers, options.header), source, requirementOf(req.url ?? '')).then(
      (d) => {
        if (d.status === 200) {
          res.writeHead(200, { ...identityHeaders(d.identity), 'content-length': '0' });
          res.end();
          return;
        }
        res.writeHead(d.status, {
          'www-authenticate': challenge(d),
          // nginx only passes 2xx/401/403 through auth_request; this lets its config map the rest.
          'x-error-status': String(d.status),
          'content-type': 'text/plain; charset=utf-8',
          ...(d.status === 429 ? { 'retry-after': '60' } : {}),
        });
        res.end(`${d.status === 403 ? 'forbidden' : d.status === 429 ? 'too many failed attempts' : 'unauthorized'}: ${d.description}\n`);
      },
      () => {
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'x-error-status': '503' });
        res.end('verification is unavailable (store not reachable)\n');
      },
    );
  };
}
