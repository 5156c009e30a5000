import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { SignJWT, jwtVerify } from 'jose';
import { rememberSecret, tempDir } from './output.js';

export type UpstreamMode = 'ok' | '500' | 'hang' | '401' | 'malformed' | 'missing-field';

export interface FakeUpstreamOptions {
  /** The upstream's clock (share the test's ManualClock so `exp` lines up). */
  now?: () => number;
  lifetimeSeconds?: number;
  /** Also serve HTTPS with a fresh self-signed certificate (its PEM is `caFile`). */
  tls?: boolean;
}

/**
 * A real HTTP server playing the identity providers of seeds 000 and 002: a CPD-style login
 * (`POST /icp4d-api/v1/authorize`, token at `.token`) and an OAuth2 token endpoint (client
 * credentials, rotating refresh tokens). Tokens are HS256 JWTs with a short `exp`. It counts
 * logins, checks credentials, and fails on demand.
 */
export class FakeUpstream {
  readonly username = 'svc-prometheus';
  readonly password = rememberSecret(`pw-${randomBytes(12).toString('hex')}`);
  readonly apiKey = rememberSecret(`ak-${randomBytes(12).toString('hex')}`);
  readonly clientId = 'tokenwarden-client';
  readonly clientSecret = rememberSecret(`cs-${randomBytes(12).toString('hex')}`);
  mode: UpstreamMode = 'ok';
  lifetimeSeconds: number;
  /** Successful token issuances (logins and grants). */
  issued = 0;
  /** Every request to a token endpoint, failed or not. */
  attempts = 0;
  lastRequest: { path: string; headers: IncomingMessage['headers']; contentType: string; fields: Record<string, string> } | null = null;
  url = '';
  httpsUrl = '';
  caFile = '';
  private readonly key = new TextEncoder().encode(randomBytes(32).toString('hex'));
  private readonly refreshTokens = new Set<string>();
  private readonly now: () => number;
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly options: FakeUpstreamOptions) {
    this.now = options.now ?? Date.now;
    this.lifetimeSeconds = options.lifetimeSeconds ?? 300;
  }

  static async start(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
    const up = new FakeUpstream(options);
    const handler = (req: IncomingMessage, res: ServerResponse) => void up.handle(req, res);
    up.url = await up.listen(createServer(handler));
    if (options.tls) {
      const dir = tempDir('upstream-tls');
      const key = join(dir, 'key.pem');
      up.caFile = join(dir, 'cert.pem');
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', up.caFile,
        '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      ], { stdio: 'ignore' });
      const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(up.caFile) }, handler);
      up.httpsUrl = (await up.listen(server)).replace('http:', 'https:');
    }
    return up;
  }

  private listen(server: Server): Promise<string> {
    this.servers.push(server);
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
  }

  /** A refresh token to configure a client with; valid once. */
  newRefreshToken(): string {
    const t = rememberSecret(`rt-${randomBytes(16).toString('hex')}`);
    this.refreshTokens.add(t);
    return t;
  }

  /** Whether this upstream issued the token and it has not expired (what an API behind it would check). */
  async accepts(token: string, at = this.now()): Promise<boolean> {
    try {
      await jwtVerify(token, this.key, { currentDate: new Date(at), clockTolerance: 0 });
      return true;
    } catch {
      return false;
    }
  }

  private async jwt(subject: string, extra: Record<string, unknown> = {}): Promise<string> {
    const iat = Math.floor(this.now() / 1000);
    const token = await new SignJWT({ ...extra, jti: randomBytes(6).toString('hex') })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(subject)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.lifetimeSeconds)
      .sign(this.key);
    this.issued++;
    return rememberSecret(token);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!;
    let fields: Record<string, string> = {};
    try {
      fields = contentType === 'application/json' ? JSON.parse(text) : Object.fromEntries(new URLSearchParams(text));
    } catch {
      return this.send(res, 400, { error: 'invalid_request' });
    }
    const path = (req.url ?? '').split('?')[0]!;
    if (req.method !== 'POST' || (path !== '/icp4d-api/v1/authorize' && path !== '/oauth/token')) return this.send(res, 404, { error: 'not found' });
    this.attempts++;
    this.lastRequest = { path, headers: req.headers, contentType, fields };
    switch (this.mode) {
      case 'hang':
        return; // never answers; closed by close()
      case '500':
        // A body that echoes the request, as some broken upstreams do: it must never be shown.
        return this.send(res, 500, { error: 'internal', echo: fields });
      case '401':
        return this.send(res, 401, { message: 'Invalid credentials', echo: fields });
      case 'malformed':
        res.writeHead(200, { 'content-type': 'text/html' }).end(`<html>gateway says hi ${fields.password ?? ''}</html>`);
        return;
    }
    if (path === '/icp4d-api/v1/authorize') {
      const ok = fields.username === this.username && (fields.password === this.password || fields.api_key === this.apiKey);
      if (!ok) return this.send(res, 401, { _messageCode_: 'error', message: 'Invalid username or password', echo: fields });
      const token = await this.jwt(fields.username!, { role: 'metrics' });
      if (this.mode === 'missing-field') return this.send(res, 200, { _messageCode_: '200', message: 'success', accessToken: token });
      return this.send(res, 200, { _messageCode_: '200', message: 'success', token });
    }
    // OAuth2 token endpoint: client_secret_basic or client_secret_post.
    let clientId = fields.client_id;
    let clientSecret = fields.client_secret;
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const [id, secret] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':').map((s) => decodeURIComponent(s.replace(/\+/g, ' ')));
      clientId = id;
      clientSecret = secret;
    }
    if (clientId !== this.clientId || clientSecret !== this.clientSecret) return this.send(res, 401, { error: 'invalid_client' });
    let refreshToken: string | undefined;
    if (fields.grant_type === 'refresh_token') {
      if (!fields.refresh_token || !this.refreshTokens.delete(fields.refresh_token)) return this.send(res, 400, { error: 'invalid_grant', echo: fields });
      refreshToken = this.newRefreshToken();
    } else if (fields.grant_type !== 'client_credentials') return this.send(res, 400, { error: 'unsupported_grant_type' });
    const token = await this.jwt(clientId, { scope: fields.scope, aud: fields.audience });
    const key = this.mode === 'missing-field' ? 'token' : 'access_token';
    return this.send(res, 200, { [key]: token, token_type: 'Bearer', expires_in: this.lifetimeSeconds, ...(refreshToken ? { refresh_token: refreshToken } : {}) });
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export interface GatedExporter {
  /** host:port, for a scrape config's targets. */
  target: string;
  scrapes: { accepted: number; rejected: number };
  close(): Promise<void>;
}

/** A metrics endpoint that serves `metrics` only to a Bearer token `up` still accepts (401 otherwise), counting both. */
export async function startGatedExporter(up: FakeUpstream, metrics: string): Promise<GatedExporter> {
  const scrapes = { accepted: 0, rejected: 0 };
  const server = createServer((req, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    void up.accepts(token).then((ok) => {
      if (!ok) {
        scrapes.rejected++;
        return void res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
      }
      scrapes.accepted++;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    target: `127.0.0.1:${(server.address() as { port: number }).port}`,
    scrapes,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
