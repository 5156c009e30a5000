import { readFileSync } from 'node:fs';
import { Agent, type Dispatcher, fetch } from 'undici';
import { type Clock, parseDuration } from '../clock.js';
import type { FetchedToken } from '../sources/source.js';
import { type SecretRef, resolveSecret } from '../sources/secret-ref.js';
import { UpstreamError, safeUrl } from '../sources/upstream-http.js';
import type { AgentBindingState } from './state.js';

export interface RemoteServer {
  url: string;
  token: SecretRef;
  caFile?: string;
  timeout?: string | number;
}

/** tokenwarden's own REST API, seen from the agent: mint and revoke, nothing else. */
export class RemoteTokenwarden {
  private readonly dispatcher: Dispatcher;
  private readonly timeoutMs: number;
  readonly base: string;

  constructor(private readonly server: RemoteServer, private readonly env: NodeJS.ProcessEnv = process.env) {
    this.base = server.url.replace(/\/+$/, '');
    this.timeoutMs = parseDuration(server.timeout ?? '10s')!;
    this.dispatcher = new Agent({ connect: server.caFile ? { ca: readFileSync(server.caFile, 'utf8') } : {}, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
  }

  async call(method: string, path: string, body: unknown): Promise<any> {
    const where = `${method} ${safeUrl(this.base + path)}`;
    let res: Awaited<ReturnType<typeof fetch>>;
    let text: string;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { authorization: `Bearer ${resolveSecret('server.token', this.server.token, this.env)}`, 'content-type': 'application/json', 'user-agent': 'tokenwarden-agent/0.1' },
        body: JSON.stringify(body),
        dispatcher: this.dispatcher,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      if (e.name === 'TimeoutError') throw new UpstreamError('timeout', `${where} did not answer within ${this.timeoutMs / 1000}s`);
      throw new UpstreamError('unreachable', `${where}: cannot connect (${e.cause?.code ?? e.message})`);
    }
    let data: any;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      throw new UpstreamError('malformed', `${where} answered ${res.status} with a body that is not JSON`);
    }
    if (!res.ok) {
      // tokenwarden's problem details never carry a secret, so its detail is shown.
      const detail = typeof data?.detail === 'string' ? `: ${data.detail}` : '';
      const reason = res.status === 401 || res.status === 403 ? 'unauthorized' : res.status >= 500 ? 'server' : 'rejected';
      throw new UpstreamError(reason, `${where} answered ${res.status}${detail}`);
    }
    return data;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/**
 * A binding whose token tokenwarden mints on a remote server. Overlap like the server's
 * rotation: the new token is minted and delivered first; the old one is revoked only after its
 * grace period (so consumers that re-read the file late still work), and a minted token that
 * never reached the sinks is revoked at once (no leaked live tokens). Only ids are remembered.
 */
export class RemoteMintSource {
  readonly kind = 'mint';
  readonly describe: string;
  private pendingId: string | null = null;
  private readonly lifetimeMs: number;
  private readonly graceMs: number;

  constructor(
    private readonly binding: string,
    private readonly spec: { actor: string; scopes: string[]; lifetime: string | number; grace?: string | number },
    private readonly remote: RemoteTokenwarden,
    private readonly state: AgentBindingState,
    private readonly clock: Clock,
  ) {
    this.describe = `mint ${spec.actor} at ${safeUrl(remote.base)}`;
    this.lifetimeMs = parseDuration(spec.lifetime)!;
    this.graceMs = parseDuration(spec.grace ?? '1m')!;
    state.minted ??= { tokenId: null, retire: [] };
  }

  async fetch(): Promise<FetchedToken> {
    const stamp = new Date(this.clock.now()).toISOString().replace(/[-:.]/g, '').slice(0, 15);
    const created = await this.remote.call('POST', '/api/v1/tokens', {
      actor: this.spec.actor,
      name: `agent:${this.binding}:${stamp}`,
      scopes: this.spec.scopes,
      expiresIn: `${Math.round(this.lifetimeMs / 1000)}s`,
    });
    if (typeof created?.token !== 'string' || typeof created?.id !== 'string') throw new UpstreamError('malformed', `${this.describe}: the answer has no token`);
    this.pendingId = created.id;
    return { token: created.token, expiresAt: Date.parse(created.expiresAt) };
  }

  async delivered(): Promise<void> {
    const minted = this.state.minted!;
    if (minted.tokenId) minted.retire.push({ id: minted.tokenId, at: this.clock.now() + this.graceMs });
    minted.tokenId = this.pendingId;
    this.pendingId = null;
  }

  async undelivered(): Promise<void> {
    if (this.pendingId) await this.revoke(this.pendingId, 'agent: the new token could not be delivered');
    this.pendingId = null;
  }

  /** Revokes old tokens whose grace has passed; keeps the ones that failed for the next run. */
  async retireDue(): Promise<number> {
    const minted = this.state.minted!;
    const now = this.clock.now();
    let done = 0;
    const keep: { id: string; at: number }[] = [];
    for (const r of minted.retire) {
      if (r.at > now) {
        keep.push(r);
        continue;
      }
      try {
        await this.revoke(r.id, `agent: replaced in binding ${this.binding}`);
        done++;
      } catch {
        keep.push(r);
      }
    }
    minted.retire = keep;
    return done;
  }

  private async revoke(id: string, reason: string): Promise<void> {
    try {
      await this.remote.call('POST', `/api/v1/tokens/${encodeURIComponent(id)}/revoke`, { reason });
    } catch (err) {
      // Already revoked or gone is what we wanted.
      if (err instanceof UpstreamError && /answered (404|409)/.test(err.message)) return;
      throw err;
    }
  }
}
