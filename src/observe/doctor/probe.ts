import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type PeerCertificate, checkServerIdentity, connect as tlsConnect } from 'node:tls';
import { isIP } from 'node:net';

/** What doctor learns about a URL: its TLS certificate (https) and its answer to the token. */
export interface TlsFinding {
  problems: string[];
  certificate?: { subject: string; altNames: string[]; issuer: string; validTo: string };
}

export interface HttpFinding {
  status?: number;
  /** The request as sent, with the token shown by its public id only. */
  sentAs: string;
  wwwAuthenticate?: string;
  challenge?: Challenge;
  explanation: string;
  ok: boolean;
  error?: string;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export interface ProbeOptions {
  /** PEM of the CA to trust (Prometheus tls_config.ca_file). */
  ca?: string;
  /** The name to check the certificate against (Prometheus tls_config.server_name). */
  serverName?: string;
  timeoutMs?: number;
}

/** RFC 7235 challenge: `Bearer realm="x", error="invalid_token", scope="a b"`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) params[p[1].toLowerCase()] = p[2] ?? p[3] ?? '';
  return { scheme: m[1], params };
}

function names(cert: PeerCertificate): string[] {
  const alt = (cert.subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim().replace(/^(DNS|IP Address):/, ''))
    .filter(Boolean);
  const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : undefined;
  return alt.length ? alt : cn ? [cn] : [];
}

const CHAIN_ERRORS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'it is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its chain ends in a self-signed CA that is not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'it is signed by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'it is signed by a CA that is not trusted',
  CERT_HAS_EXPIRED: 'it has expired',
  CERT_NOT_YET_VALID: 'it is not valid yet',
};

/**
 * Connects without trusting anything, then checks what a client would check: the chain (against
 * `ca`) and the name (`serverName`, else the URL's host), so both mistakes are reported at once.
 */
export function probeTls(url: URL, options: ProbeOptions = {}): Promise<TlsFinding> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  const name = options.serverName ?? host;
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port,
      servername: isIP(name) ? undefined : name,
      ca: options.ca,
      rejectUnauthorized: false,
      // The name is checked below on its own, so `authorizationError` speaks of the chain only.
      checkServerIdentity: () => undefined,
      timeout: options.timeoutMs ?? 10_000,
    });
    const done = (finding: TlsFinding) => {
      socket.destroy();
      resolve(finding);
    };
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      const problems: string[] = [];
      const certNames = names(cert);
      const certificate = {
        subject: typeof cert.subject?.CN === 'string' ? `CN=${cert.subject.CN}` : '',
        altNames: certNames,
        issuer: typeof cert.issuer?.CN === 'string' ? `CN=${cert.issuer.CN}` : '',
        validTo: cert.valid_to,
      };
      if (checkServerIdentity(name, cert)) {
        problems.push(
          `the certificate at ${host}:${port} is for ${certNames.map((n) => `"${n}"`).join(', ') || 'no name'}, not for "${name}", so a client that checks names (Prometheus, curl) refuses it before any token is sent. ` +
            `Either connect with the server name the certificate carries (Prometheus tls_config.server_name: ${certNames[0] ?? '<name>'}; doctor --server-name ${certNames[0] ?? '<name>'}) or reissue the certificate with "${name}" in its subjectAltName`,
        );
      }
      if (!socket.authorized) {
        const code = String(socket.authorizationError ?? 'unknown');
        problems.push(
          `the certificate is not trusted (${code}): ${CHAIN_ERRORS[code] ?? 'its chain does not verify'}. Give the client the CA (Prometheus tls_config.ca_file; doctor --ca <file>)`,
        );
      }
      done({ problems, certificate });
    });
    socket.once('timeout', () => done({ problems: [`no TLS handshake with ${host}:${port} within ${(options.timeoutMs ?? 10_000) / 1000}s`] }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') return done({ problems: [`nothing listens at ${host}:${port} (connection refused)`] });
      if (/wrong version number|packet length too long|unknown protocol/i.test(err.message)) {
        return done({ problems: [`${host}:${port} does not speak TLS; use http:// or the HTTPS port`] });
      }
      done({ problems: [`the TLS handshake with ${host}:${port} failed (${err.code ?? err.message})`] });
    });
  });
}

/** Sends one GET with the token in the given header and explains the answer. */
export function probeHttp(url: URL, header: { name: string; value: string; shown: string }, options: ProbeOptions = {}): Promise<HttpFinding> {
  const sentAs = `${header.name}: ${header.shown}`;
  return new Promise((resolve) => {
    const https = url.protocol === 'https:';
    const name = options.serverName;
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method: 'GET',
        headers: { [header.name]: header.value, 'user-agent': 'tokenwarden-doctor/0.1' },
        timeout: options.timeoutMs ?? 10_000,
        ...(https
          ? {
              ca: options.ca,
              servername: name && !isIP(name) ? name : undefined,
              checkServerIdentity: name ? (_host: string, cert: PeerCertificate) => checkServerIdentity(name, cert) : undefined,
            }
          : {}),
      },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        const www = res.headers['www-authenticate'];
        const wwwAuthenticate = Array.isArray(www) ? www.join(', ') : www;
        const challenge = parseChallenge(wwwAuthenticate);
        resolve({ status, sentAs, wwwAuthenticate, challenge, ok: status >= 200 && status < 300, explanation: explainAnswer(status, challenge) });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const error = err.code ?? err.message;
      resolve({ sentAs, ok: false, error, explanation: `the request failed before an answer (${error})` });
    });
    req.end();
  });
}

/** The answer of an endpoint, in words: what its status and its WWW-Authenticate challenge say. */
export function explainAnswer(status: number, challenge: Challenge | undefined): string {
  if (status >= 200 && status < 300) return `the endpoint accepted the token (HTTP ${status})`;
  const p = challenge?.params ?? {};
  const bearer = challenge?.scheme.toLowerCase() === 'bearer';
  if (status === 401) {
    if (!challenge) return 'the endpoint answered 401 without a WWW-Authenticate challenge: it is not behind tokenwarden, or a proxy drops the header';
    if (!bearer) return `the endpoint answered 401 asking for "${challenge.scheme}" authentication, not a bearer token: it is not guarded by tokenwarden, or the client talks to the wrong port`;
    if (!p.error) return 'the endpoint answered 401 with a bare Bearer challenge: it received no bearer token at all. The client did not send "Authorization: Bearer <token>" (wrong header name or scheme, or the proxy does not pass it on)';
    return `the endpoint refused the token (401, ${p.error})${p.error_description ? `: ${p.error_description}` : ''}`;
  }
  if (status === 403) {
    if (bearer && p.error === 'insufficient_scope') return `the endpoint accepts the token but requires the scope${(p.scope ?? '').includes(' ') ? 's' : ''} "${p.scope ?? '?'}" (403, insufficient_scope)${p.error_description ? `: ${p.error_description}` : ''}`;
    return 'the endpoint answered 403 (forbidden) without saying which scope it needs';
  }
  if (status === 429) return 'the endpoint answered 429: too many failed attempts from this address; wait a minute and fix the token first';
  return `the endpoint answered HTTP ${status}, which is not about the token`;
}
