import type { Dispatcher } from 'undici';
import { type Clock, parseDuration } from '../clock.js';
import type { Logger } from '../log.js';
import { type ValueOrRef, describeRef, isSecretRef, resolveValue } from './secret-ref.js';
import type { FetchedToken, Source } from './source.js';
import { createDispatcher, safeUrl } from './upstream-http.js';

export interface SourceDeps {
  clock: Clock;
  logger: Logger;
  /** Where credentials named by { env } are looked up (tests pass their own). */
  env?: NodeJS.ProcessEnv;
}

interface HttpCommon {
  timeout?: string | number;
  lifetime?: string | number;
  headers?: Record<string, ValueOrRef>;
  caFile?: string;
  insecureSkipVerify?: boolean;
}

/** What every HTTP source shares: the connection pool with its TLS settings, the timeout, headers. */
export abstract class HttpSource implements Source {
  abstract readonly kind: string;
  abstract readonly describe: string;
  protected readonly dispatcher: Dispatcher;
  protected readonly timeoutMs: number;
  protected readonly lifetimeMs: number | undefined;

  constructor(protected readonly common: HttpCommon, url: string, protected readonly deps: SourceDeps) {
    this.timeoutMs = parseDuration(common.timeout ?? '10s')!;
    this.lifetimeMs = common.lifetime === undefined ? undefined : parseDuration(common.lifetime);
    this.dispatcher = createDispatcher({ caFile: common.caFile, insecureSkipVerify: common.insecureSkipVerify }, this.timeoutMs);
    if (common.insecureSkipVerify) {
      deps.logger.warn({ upstream: safeUrl(url) }, 'insecureSkipVerify is set: the upstream certificate is NOT verified; anyone on the path can steal the credentials. Set caFile instead');
    }
  }

  abstract fetch(): Promise<FetchedToken>;

  protected headers(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.common.headers ?? {})) out[name.toLowerCase()] = resolveValue(`headers.${name}`, value, this.deps.env);
    return out;
  }

  /** Names the places credentials come from, for a 401 message ("env CPD_USERNAME, file /run/cpd/password"). */
  protected static hint(values: Record<string, unknown>): string {
    const refs = Object.values(values).filter(isSecretRef).map(describeRef);
    return refs.length ? `the credentials in ${refs.join(', ')}` : 'the configured credentials';
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
