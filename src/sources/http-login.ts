import type { HttpLoginConfig } from './source-config.js';
import { expiryOf } from './expiry.js';
import { HttpSource, type SourceDeps } from './http-base.js';
import { resolveValue } from './secret-ref.js';
import type { FetchedToken } from './source.js';
import { postForJson, readJsonPath, safeUrl, tokenAt } from './upstream-http.js';

/**
 * Logs in to an upstream that answers with a token in JSON, e.g. Cloud Pak for Data's
 * `POST /icp4d-api/v1/authorize {username, password}` → `{"token": "<JWT>"}` (seed 000).
 */
export class HttpLoginSource extends HttpSource {
  readonly kind = 'http-login';
  readonly describe: string;

  constructor(private readonly config: HttpLoginConfig, deps: SourceDeps) {
    super(config, config.url, deps);
    this.describe = `http-login POST ${safeUrl(config.url)}`;
  }

  async fetch(): Promise<FetchedToken> {
    const fields: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.config.body)) fields[name] = resolveValue(`body.${name}`, value, this.deps.env);
    const form = this.config.bodyFormat === 'form';
    const data = await postForJson({
      url: this.config.url,
      headers: this.headers(),
      body: form ? new URLSearchParams(fields).toString() : JSON.stringify(fields),
      contentType: form ? 'application/x-www-form-urlencoded' : 'application/json',
      dispatcher: this.dispatcher,
      timeoutMs: this.timeoutMs,
      credentialsHint: HttpSource.hint({ ...this.config.body, ...this.config.headers }),
    });
    const token = tokenAt(data, this.config.tokenPath ?? '.token', this.describe);
    const now = this.deps.clock.now();
    const expiresAt = expiryOf(token, {
      now,
      expiresIn: readJsonPath(data, this.config.expiresInPath ?? '.expires_in'),
      lifetimeMs: this.lifetimeMs,
      where: this.describe,
    });
    return { token, expiresAt };
  }
}
