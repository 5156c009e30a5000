import type { OAuth2ClientCredentialsConfig, OAuth2RefreshTokenConfig } from './source-config.js';
import { expiryOf } from './expiry.js';
import { HttpSource, type SourceDeps } from './http-base.js';
import { type SecretSlot, fingerprint } from './sealed-state.js';
import { resolveSecret, resolveValue } from './secret-ref.js';
import type { FetchedToken } from './source.js';
import { UpstreamError, postForJson, safeUrl, tokenAt } from './upstream-http.js';

type OAuth2Config = OAuth2ClientCredentialsConfig | OAuth2RefreshTokenConfig;

/** The token endpoint call shared by both grants (RFC 6749 §4.4 and §6). */
abstract class OAuth2Source extends HttpSource {
  readonly describe: string;
  constructor(protected readonly config: OAuth2Config, deps: SourceDeps) {
    super(config, config.tokenUrl, deps);
    this.describe = `${config.kind} ${safeUrl(config.tokenUrl)}`;
  }

  protected async requestToken(grant: Record<string, string>): Promise<Record<string, unknown>> {
    const params = new URLSearchParams(grant);
    const headers = this.headers();
    const clientId = this.config.clientId === undefined ? undefined : resolveValue('clientId', this.config.clientId, this.deps.env);
    const clientSecret = this.config.clientSecret ? resolveSecret('clientSecret', this.config.clientSecret, this.deps.env) : undefined;
    if (clientId !== undefined) {
      if (clientSecret !== undefined && (this.config.authMethod ?? 'client_secret_basic') === 'client_secret_basic') {
        // RFC 6749 §2.3.1: both parts form-encoded before base64.
        const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
        headers.authorization = `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
      } else {
        params.set('client_id', clientId);
        if (clientSecret !== undefined) params.set('client_secret', clientSecret);
      }
    }
    if (this.config.scopes?.length) params.set('scope', this.config.scopes.join(' '));
    if (this.config.audience) params.set('audience', this.config.audience);
    if (this.config.resource) params.set('resource', this.config.resource);
    return postForJson({
      url: this.config.tokenUrl,
      headers,
      body: params.toString(),
      contentType: 'application/x-www-form-urlencoded',
      dispatcher: this.dispatcher,
      timeoutMs: this.timeoutMs,
      credentialsHint: HttpSource.hint({ clientId: this.config.clientId, clientSecret: this.config.clientSecret, ...this.config.headers }),
    });
  }

  protected toFetched(data: Record<string, unknown>): FetchedToken {
    const token = tokenAt(data, this.config.tokenPath ?? '.access_token', this.describe);
    const expiresAt = expiryOf(token, { now: this.deps.clock.now(), expiresIn: data.expires_in, lifetimeMs: this.lifetimeMs, where: this.describe });
    return { token, expiresAt };
  }
}

export class OAuth2ClientCredentialsSource extends OAuth2Source {
  readonly kind = 'oauth2-client-credentials';
  async fetch(): Promise<FetchedToken> {
    return this.toFetched(await this.requestToken({ grant_type: 'client_credentials' }));
  }
}

/**
 * The refresh-token grant. Upstreams that rotate refresh tokens invalidate the old one on use, so
 * the new one is saved (sealed) before the access token is handed on: a crash between the two
 * loses an access token, never the chain. The saved token carries a fingerprint of the configured
 * one; when the operator puts a new refresh token in the env var or file, that one wins.
 */
export class OAuth2RefreshTokenSource extends OAuth2Source {
  readonly kind = 'oauth2-refresh-token';
  constructor(config: OAuth2RefreshTokenConfig, deps: SourceDeps, private readonly slot: SecretSlot) {
    super(config, deps);
  }

  async fetch(): Promise<FetchedToken> {
    const configured = resolveSecret('refreshToken', (this.config as OAuth2RefreshTokenConfig).refreshToken, this.deps.env);
    const seed = fingerprint(configured);
    const saved = await this.loadSaved();
    const current = saved && saved.seed === seed ? saved.refreshToken : configured;
    let data: Record<string, unknown>;
    try {
      data = await this.requestToken({ grant_type: 'refresh_token', refresh_token: current });
    } catch (err) {
      if (err instanceof UpstreamError && (err.reason === 'rejected' || err.reason === 'unauthorized')) {
        throw new UpstreamError(
          err.reason,
          `${err.message}. The refresh token (${saved && saved.seed === seed ? 'the rotated one kept in the state' : 'the configured one'}) may be expired or already used; put a fresh refresh token in the configured env var or file`,
        );
      }
      throw err;
    }
    const rotated = data.refresh_token;
    if (typeof rotated === 'string' && rotated && rotated !== current) await this.slot.save(JSON.stringify({ seed, refreshToken: rotated }));
    return this.toFetched(data);
  }

  private async loadSaved(): Promise<{ seed: string; refreshToken: string } | undefined> {
    const text = await this.slot.load();
    if (!text) return undefined;
    const parsed = JSON.parse(text) as { seed?: unknown; refreshToken?: unknown };
    return typeof parsed.seed === 'string' && typeof parsed.refreshToken === 'string' ? { seed: parsed.seed, refreshToken: parsed.refreshToken } : undefined;
  }
}
