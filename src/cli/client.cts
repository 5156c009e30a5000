import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Exit codes: one meaning each, so scripts can tell what went wrong. */
export const EXIT = { ok: 0, failure: 1, usage: 2, auth: 3, server: 4, unreachable: 5 } as const;

export class CliError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

export interface ClientSettings {
  server: string;
  token?: string;
}

export function cliConfigPath(): string {
  return process.env.TOKENWARDEN_CLI_CONFIG ?? join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'tokenwarden', 'cli.yaml');
}

/** Flags win over env, env over the CLI config file written by `tokenwarden login`. */
export function resolveClientSettings(flags: { server?: string; token?: string; tokenFile?: string }): ClientSettings {
  let file: Partial<ClientSettings> = {};
  const path = cliConfigPath();
  // The YAML parser is loaded only when there is a CLI config file to read.
  if (existsSync(path)) file = ((require('yaml') as typeof import('yaml')).parse(readFileSync(path, 'utf8')) as Partial<ClientSettings>) ?? {};
  let token = flags.token ?? process.env.TOKENWARDEN_TOKEN ?? file.token;
  const tokenFile = flags.tokenFile ?? process.env.TOKENWARDEN_TOKEN_FILE;
  if (!flags.token && tokenFile) token = readFileSync(tokenFile, 'utf8').trim();
  return { server: (flags.server ?? process.env.TOKENWARDEN_SERVER ?? file.server ?? 'http://127.0.0.1:8080').replace(/\/+$/, ''), token };
}

export class ApiClient {
  constructor(readonly settings: ClientSettings) {}

  async request<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    if (!this.settings.token) {
      throw new CliError('no token: pass --token, set TOKENWARDEN_TOKEN, or run "tokenwarden login"', EXIT.auth);
    }
    let res: { status: number; statusText: string; text: string };
    try {
      res = await send(`${this.settings.server}${path}`, method, {
        authorization: `Bearer ${this.settings.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        'user-agent': 'tokenwarden-cli/0.1',
      }, body !== undefined ? JSON.stringify(body) : undefined);
    } catch (err) {
      const cause = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new CliError(`cannot reach tokenwarden at ${this.settings.server} (${cause}); is it running? Set --server or TOKENWARDEN_SERVER`, EXIT.unreachable);
    }
    const text = res.text;
    let data: any = undefined;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (res.status < 200 || res.status > 299) {
      const detail = typeof data === 'object' && data?.detail ? data.detail : `${res.status} ${res.statusText}`;
      const code = res.status === 401 || res.status === 403 ? EXIT.auth : res.status >= 500 ? EXIT.server : EXIT.usage;
      throw new CliError(`error ${res.status}: ${detail}`, code);
    }
    return data as T;
  }
}

/** What `send` reads back: the status line and the body as text. */
export interface RawResponse {
  status: number;
  statusText: string;
  text: string;
}

/**
 * One HTTP/1.1 exchange on a connection of its own (`connection: close`), written and read here
 * rather than with node:http or fetch: loading and setting up node:http's client (its agent,
 * parser and stream machinery) costs a CLI command about a quarter of a `node -e 0`, fetch more,
 * and a command makes one or a few requests. The server closes the connection after its answer
 * (RFC 9112 §9.6), so the answer is read to the end and framed by parseResponse.
 */
export function send(url: string, method: string, headers: Record<string, string>, body: string | undefined): Promise<RawResponse> {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  if (!secure && target.protocol !== 'http:') return Promise.reject(new Error(`${target.protocol} is not http: or https:`));
  const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
  const fields: Record<string, string> = { host: target.host, ...headers, ...(payload ? { 'content-length': String(payload.length) } : {}), connection: 'close' };
  const lines = [`${method} ${target.pathname}${target.search} HTTP/1.1`];
  for (const [name, value] of Object.entries(fields)) {
    // What node:http refuses too: a value that would end the header line (a token read from a file with a stray newline).
    if (!FIELD_VALUE.test(value)) return Promise.reject(Object.assign(new Error(`invalid character in the ${name} header`), { code: 'ERR_INVALID_CHAR' }));
    lines.push(`${name}: ${value}`);
  }
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1'); // [::1] → ::1
  const port = Number(target.port || (secure ? 443 : 80));
  return new Promise((resolve, reject) => {
    const net = require('node:net') as typeof import('node:net');
    // tls.connect checks the chain and the name as https does (SNI only for a name, never for an address).
    const socket = secure
      ? (require('node:tls') as typeof import('node:tls')).connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }) })
      : net.connect({ host, port });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks), method));
      } catch (err) {
        reject(err);
      } finally {
        socket.destroy();
      }
    });
    socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    if (payload) socket.write(payload);
  });
}

/** A header value node:http would accept: visible characters, spaces and tabs (RFC 9110 §5.5), latin-1. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A whole HTTP/1.1 answer, read until the server closed the connection: interim (1xx) answers skipped, the body framed by chunked encoding, content-length, or the end. */
export function parseResponse(raw: Buffer, method = 'GET'): RawResponse {
  for (let at = 0; ; ) {
    const headEnd = raw.indexOf('\r\n\r\n', at);
    if (headEnd < 0) throw new Error(raw.length ? 'the connection closed in the middle of the answer' : 'the connection closed without an answer');
    const [statusLine = '', ...fieldLines] = raw.subarray(at, headEnd).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
    if (!m) throw new Error('the answer is not HTTP/1.1');
    at = headEnd + 4;
    const status = Number(m[1]);
    if (status < 200) continue;
    const fields = new Map<string, string>();
    for (const line of fieldLines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error('the answer has a malformed header line');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      fields.set(name, fields.has(name) ? `${fields.get(name)}, ${value}` : value);
    }
    let content = raw.subarray(at);
    if (method === 'HEAD' || status === 204 || status === 304) content = Buffer.alloc(0);
    else if (/(^|,)\s*chunked\s*$/i.test(fields.get('transfer-encoding') ?? '')) content = dechunk(content);
    else if (fields.has('content-length')) {
      const length = Number(fields.get('content-length'));
      if (!/^\d+$/.test(fields.get('content-length')!) || !Number.isSafeInteger(length)) throw new Error('the answer has an invalid content-length');
      if (content.length < length) throw new Error('the connection closed in the middle of the answer');
      content = content.subarray(0, length);
    }
    return { status, statusText: m[2] ?? '', text: content.toString('utf8') };
  }
}

/** A chunked body (RFC 9112 §7.1), up to its last chunk; extensions and trailers are ignored. */
function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; ; ) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) throw new Error('the connection closed in the middle of the answer');
    const sizeText = body.subarray(at, eol).toString('latin1').split(';')[0]!.trim();
    if (!/^[0-9a-f]{1,12}$/i.test(sizeText)) throw new Error('the answer has a malformed chunk');
    const size = Number.parseInt(sizeText, 16);
    if (size === 0) return Buffer.concat(parts);
    const start = eol + 2;
    if (body.length < start + size + 2) throw new Error('the connection closed in the middle of the answer');
    parts.push(body.subarray(start, start + size));
    at = start + size + 2;
  }
}
