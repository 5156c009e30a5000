import { Agent as HttpAgent, type OutgoingHttpHeaders, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Clock } from '../../clock.js';
import type { Refusal, Requirement } from '../../verify/decision.js';
import { hashSecret, parseToken, secretMatches } from '../../token/format.js';
import type { RequestOrigin } from '../../verify/request-origin.js';
import { type GateCheck, type GateVerdict, verdictOf } from './check.js';

export interface RemoteCheckOptions {
  /** Base URL of a tokenwarden server, e.g. http://tokenwarden:8080 */
  server: string;
  requirement: Requirement;
  /** How long an allowed token is trusted without asking again: the bound on how late a revocation is seen here. */
  cacheTtlMs: number;
  cacheSize?: number;
  timeoutMs?: number;
  clock: Clock;
}

/** Refused here without a round trip, as the server would refuse them. */
const MISSING: Refusal = { status: 401, error: '', description: 'no bearer token was given' };
const MALFORMED: Refusal = { status: 401, error: 'invalid_token', description: 'the token is malformed' };

const PASSED_BACK = ['www-authenticate', 'retry-after', 'x-error-status', 'content-type'] as const;
const IDENTITY = ['x-tokenwarden-actor', 'x-tokenwarden-actor-kind', 'x-tokenwarden-token-id', 'x-tokenwarden-scopes', 'x-auth-request-user'] as const;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

type ResetError = NodeJS.ErrnoException & { reusedSocket?: boolean };

/** The server closed the connection under the request: what a reused keep-alive socket does when the server timed it out just then. */
function isReset(err: ResetError): boolean {
  return err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'UND_ERR_SOCKET' || err.message === 'socket hang up';
}

/**
 * Keep-alive agents of the gate (to the server, to the upstream). The idle timeout is shorter
 * than the server's keep-alive (KEEP_ALIVE_TIMEOUT_MS, 72 s), so the gate closes an idle
 * connection first; it also makes Node honour a shorter `Keep-Alive: timeout=…` the server announces.
 */
export const GATE_IDLE_TIMEOUT_MS = 30_000;

export function agentOptions(maxSockets: number) {
  return { keepAlive: true, maxSockets, timeout: GATE_IDLE_TIMEOUT_MS };
}

interface Allowed {
  hash: string;
  until: number;
  verdict: GateVerdict;
}

/**
 * Asks a tokenwarden server's /auth, the same endpoint nginx uses, over a keep-alive agent.
 * Allowed answers are cached for a short TTL (never past the token's expiry), refusals never:
 * the server has its own negative cache and failure limit, fed with the client's address.
 */
export function remoteCheck(options: RemoteCheckOptions): GateCheck {
  const base = new URL(options.server);
  const query = new URLSearchParams(options.requirement.scopes.map((s): [string, string] => ['scope', s]));
  if (options.requirement.satisfy === 'any') query.set('satisfy', 'any');
  const path = `${base.pathname.replace(/\/+$/, '')}/auth${query.size ? `?${query}` : ''}`;
  const https = base.protocol === 'https:';
  const agent = https ? new HttpsAgent(agentOptions(64)) : new HttpAgent(agentOptions(64));
  const send = https ? httpsRequest : httpRequest;
  const timeoutMs = options.timeoutMs ?? 5000;
  const cacheSize = options.cacheSize ?? 10_000;
  const allowed = new Map<string, Allowed>();

  /**
   * The check is an idempotent GET: when a kept-alive connection turns out to have been closed
   * by the server as it was reused, it is asked once more, on a new connection (the other idle
   * ones may have timed out with it). A server that is down fails that attempt too: 503.
   */
  function ask(bearer: string, source: RequestOrigin): Promise<Answer> {
    return once(bearer, source, agent).catch((err: ResetError) => (err.reusedSocket && isReset(err) ? once(bearer, source, false) : Promise.reject(err)));
  }

  function once(bearer: string, source: RequestOrigin, via: HttpAgent | false): Promise<Answer> {
    const headers: OutgoingHttpHeaders = { authorization: `Bearer ${bearer}` };
    if (source.ip) headers['x-forwarded-for'] = source.ip;
    if (source.userAgent) headers['user-agent'] = source.userAgent;
    return new Promise((resolve, reject) => {
      const req = send({ protocol: base.protocol, hostname: base.hostname, port: base.port, path, method: 'GET', headers, agent: via, timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 4096) body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      });
      // The error names the server and the failure, never the request headers.
      req.on('timeout', () => req.destroy(new Error(`no answer from ${base.host} within ${timeoutMs} ms`)));
      req.on('error', (err: ResetError) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      req.end();
    });
  }

  return {
    describe: `server ${base.origin}`,
    check(bearer: string | undefined, source: RequestOrigin): GateVerdict | Promise<GateVerdict> {
      const parsed = parseToken(bearer);
      if (!parsed.ok) return verdictOf(parsed.reason === 'empty' ? MISSING : MALFORMED);
      const now = options.clock.now();
      const hit = allowed.get(parsed.id);
      if (hit !== undefined && hit.until > now && secretMatches(parsed.secret, hit.hash)) return hit.verdict;
      return ask(bearer!, source).then((answer) => {
        if (answer.status === 200) {
          const identity: OutgoingHttpHeaders = {};
          for (const h of IDENTITY) if (typeof answer.headers[h] === 'string') identity[h] = answer.headers[h];
          const verdict: GateVerdict = { allow: true, identity };
          const expiresAt = Number(answer.headers['x-tokenwarden-expires-at']) * 1000;
          const until = Math.min(options.clock.now() + options.cacheTtlMs, Number.isFinite(expiresAt) && expiresAt > 0 ? expiresAt : Infinity);
          if (until > now) {
            if (allowed.size >= cacheSize) allowed.delete(allowed.keys().next().value!);
            allowed.set(parsed.id, { hash: hashSecret(parsed.secret), until, verdict });
          }
          return verdict;
        }
        if (answer.status === 401 || answer.status === 403 || answer.status === 429) {
          allowed.delete(parsed.id);
          const headers: OutgoingHttpHeaders = {};
          for (const h of PASSED_BACK) {
            const value = answer.headers[h];
            if (value !== undefined) headers[h] = value as string;
          }
          return { allow: false, status: answer.status, headers, body: answer.body };
        }
        throw new Error(`${base.host}/auth answered ${answer.status}`);
      });
    },
    async close() {
      agent.destroy();
    },
  };
}
