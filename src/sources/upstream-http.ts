import { readFileSync } from 'node:fs';
import { Agent, type Dispatcher, fetch } from 'undici';
import { redactUrl } from '../log.js';

/** Why an upstream call failed; one word for metrics and state, a message for people. */
export type FailureReason = 'unauthorized' | 'rejected' | 'server' | 'timeout' | 'unreachable' | 'malformed' | 'missing-field' | 'config';

/**
 * An upstream failure. The message names the upstream, the status and what to check; it never
 * carries the response body, which may echo credentials or hold a token.
 */
export class UpstreamError extends Error {
  constructor(readonly reason: FailureReason, message: string) {
    super(message);
    this.name = 'UpstreamError';
  }
}

export interface TlsSettings {
  /** PEM file with the CA (or CAs) that signed the upstream's certificate. */
  caFile?: string;
  /** Skip certificate verification. Only ever set explicitly; logged as a warning. */
  insecureSkipVerify?: boolean;
}

/** A connection pool per source, with the source's trust settings and timeouts. */
export function createDispatcher(tls: TlsSettings, timeoutMs: number): Dispatcher {
  let ca: string | undefined;
  if (tls.caFile) {
    try {
      ca = readFileSync(tls.caFile, 'utf8');
    } catch (err) {
      throw new UpstreamError('config', `caFile ${tls.caFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return new Agent({
    connect: { ...(ca ? { ca } : {}), ...(tls.insecureSkipVerify ? { rejectUnauthorized: false } : {}), timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    keepAliveTimeout: 4_000,
  });
}

/** The URL as it may appear in logs and errors: no user info, no query values that look secret. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return redactUrl(u.toString());
  } catch {
    return '(invalid URL)';
  }
}

export interface PostOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  contentType: 'application/json' | 'application/x-www-form-urlencoded';
  dispatcher: Dispatcher;
  timeoutMs: number;
  /** What to tell the operator to check on a 401/403, e.g. "the credentials in env CPD_PASSWORD". */
  credentialsHint: string;
}

/** POSTs and returns the parsed JSON object, or throws an UpstreamError with a clear, secret-free message. */
export async function postForJson(options: PostOptions): Promise<Record<string, unknown>> {
  const where = `POST ${safeUrl(options.url)}`;
  let res: Awaited<ReturnType<typeof fetch>>;
  let text: string;
  try {
    res = await fetch(options.url, {
      method: 'POST',
      headers: { accept: 'application/json', 'user-agent': 'tokenwarden/0.1', ...options.headers, 'content-type': options.contentType },
      body: options.body,
      dispatcher: options.dispatcher,
      signal: AbortSignal.timeout(options.timeoutMs),
      redirect: 'manual',
    });
    text = await res.text();
  } catch (err) {
    throw transportError(err, where, options.timeoutMs);
  }
  if (res.status === 401 || res.status === 403) {
    throw new UpstreamError('unauthorized', `${where} answered ${res.status}: the upstream refused the credentials; check ${options.credentialsHint}`);
  }
  if (res.status >= 500) throw new UpstreamError('server', `${where} answered ${res.status}: the upstream failed; will retry`);
  if (res.status >= 300 && res.status < 400) {
    throw new UpstreamError('rejected', `${where} answered ${res.status} (a redirect); point the url at the final endpoint`);
  }
  if (res.status >= 400) {
    // OAuth2 error codes (RFC 6749 §5.2) are fixed words and safe to show; nothing else of the body is.
    const code = oauthErrorCode(text);
    throw new UpstreamError('rejected', `${where} answered ${res.status}${code ? ` (${code})` : ''}: the upstream rejected the request; check the source configuration`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    const type = res.headers.get('content-type') ?? 'no content type';
    throw new UpstreamError('malformed', `${where} answered ${res.status} but the body is not JSON (${type.split(';')[0]}, ${text.length} bytes)`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new UpstreamError('malformed', `${where} answered ${res.status} but the body is not a JSON object`);
  }
  return data as Record<string, unknown>;
}

function oauthErrorCode(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { error?: unknown }).error;
    return typeof code === 'string' && /^[a-z_]{1,40}$/.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

function transportError(err: unknown, where: string, timeoutMs: number): UpstreamError {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || /Timeout/i.test(e.cause?.code ?? '')) {
    return new UpstreamError('timeout', `${where} did not answer within ${Math.round(timeoutMs / 100) / 10}s`);
  }
  const code = e.cause?.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/i.test(code)) {
    return new UpstreamError('unreachable', `${where}: TLS verification failed (${code}); set caFile to the CA that signed the upstream's certificate`);
  }
  return new UpstreamError('unreachable', `${where}: cannot connect (${code || e.message})`);
}

/**
 * Reads a string at a simple JSON path: `.token`, `access_token`, `.data.token`, `.items[0].token`, `$.token`.
 */
export function readJsonPath(data: unknown, path: string): unknown {
  const steps = parseJsonPath(path);
  let cur: unknown = data;
  for (const step of steps) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[step];
  }
  return cur;
}

export function parseJsonPath(path: string): (string | number)[] {
  const text = path.trim().replace(/^\$/, '');
  const steps: (string | number)[] = [];
  const re = /\.?([A-Za-z_][\w-]*)|\[(\d+)\]|\["([^"]+)"\]/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < text.length && (m = re.exec(text))) {
    steps.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : m[3]!));
    at = re.lastIndex;
  }
  if (at !== text.length || !steps.length) throw new UpstreamError('config', `tokenPath "${path}" is not a path such as .token, .data.access_token or .items[0].token`);
  return steps;
}

/** The token at `path`, or a clear error naming the path and the fields that are there (names only). */
export function tokenAt(data: Record<string, unknown>, path: string, where: string): string {
  const value = readJsonPath(data, path);
  if (typeof value === 'string' && value.length > 0) return value;
  const fields = Object.keys(data).slice(0, 12).join(', ') || 'none';
  throw new UpstreamError('missing-field', `${where}: no token at ${path} in the answer (top-level fields: ${fields}); set tokenPath`);
}
