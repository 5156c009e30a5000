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

/**
 * One request with node:http(s) rather than fetch: the CLI starts in a fraction of the time
 * (fetch loads its whole HTTP stack on first use), and a command makes one or a few requests.
 */
async function send(url: string, method: string, headers: Record<string, string>, body: string | undefined): Promise<{ status: number; statusText: string; text: string }> {
  const target = new URL(url);
  const { request } = target.protocol === 'https:' ? (require('node:https') as typeof import('node:https')) : (require('node:http') as typeof import('node:http'));
  return new Promise((resolve, reject) => {
    const req = request(target, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
