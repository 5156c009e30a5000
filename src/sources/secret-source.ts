import { createHash } from 'node:crypto';
import { type Static, Type as T } from '@sinclair/typebox';
import { type Clock, parseDuration, systemClock } from '../clock.js';
import { Duration } from '../config/server-config.js';
import { type KubeClients, resolveKube } from '../kubernetes/client.js';
import { type KubeFailure, describeKubeError, isNotFound } from '../kubernetes/errors.js';
import type { Logger } from '../log.js';
import { jwtExpiry } from './expiry.js';
import type { FetchedToken, Source } from './source.js';
import { type FailureReason, UpstreamError } from './upstream-http.js';

/** `source: { kind: kubernetes-secret, … }` in a binding (seed 002: Secret access-token, key AUTH_TOKEN). */
export const KubernetesSecretSourceSchema = T.Object(
  {
    kind: T.Literal('kubernetes-secret'),
    namespace: T.Optional(T.String({ pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$', description: "default: tokenwarden's own namespace" })),
    name: T.String({ pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' }),
    key: T.Optional(T.String({ pattern: '^[-._a-zA-Z0-9]{1,253}$', description: 'default "token"' })),
    lifetime: T.Optional(Duration),
  },
  { additionalProperties: false },
);
export type KubernetesSecretSourceConfig = Static<typeof KubernetesSecretSourceSchema>;

export interface KubernetesSourceDeps {
  kubernetes?: unknown;
  clock?: Clock;
  logger?: Logger;
}

/**
 * The Secret the token is read from is gone. For a per-user token (seed 002) that usually means
 * the user was offboarded: the binding should turn unhealthy and say so, not retry in silence.
 */
export class SourceGoneError extends Error {
  readonly reason = 'gone';
  constructor(message: string) {
    super(message);
    this.name = 'SourceGoneError';
  }
}

const REASONS: Record<KubeFailure, FailureReason> = {
  'namespace-missing': 'config',
  'not-found': 'missing-field',
  forbidden: 'unauthorized',
  unauthorized: 'unauthorized',
  conflict: 'server',
  invalid: 'config',
  unavailable: 'unreachable',
};

/**
 * Reads a token that another platform keeps in a Secret, re-reading on every fetch so updates
 * are followed. Expiry comes from the JWT `exp` (not verified: it only schedules), or, for an
 * opaque token, from `lifetime` counted from when this token value was first seen; with both,
 * the earlier wins.
 */
export class KubernetesSecretSource implements Source {
  readonly kind = 'kubernetes-secret';
  readonly describe: string;
  private readonly namespace: string;
  private readonly key: string;
  private readonly lifetimeMs: number | undefined;
  private readonly clock: Clock;
  private clients: KubeClients | undefined;
  /** Fingerprint of the last value seen and when it was first seen (for `lifetime`). */
  private seen: { fingerprint: string; at: number } | undefined;

  constructor(
    private readonly config: Omit<KubernetesSecretSourceConfig, 'kind'> & { kind?: 'kubernetes-secret' },
    private readonly deps: KubernetesSourceDeps = {},
  ) {
    this.clock = deps.clock ?? systemClock;
    this.namespace = config.namespace ?? this.api.defaultNamespace;
    this.key = config.key ?? 'token';
    this.describe = `kubernetes-secret ${this.namespace}/${config.name}#${this.key}`;
    if (config.lifetime !== undefined) {
      const ms = parseDuration(config.lifetime);
      if (!ms) throw new UpstreamError('config', `${this.describe}: lifetime must be a duration such as "15m"`);
      this.lifetimeMs = ms;
    }
  }

  async fetch(): Promise<FetchedToken> {
    const where = `Secret ${this.namespace}/${this.config.name}`;
    let data: Record<string, string> | undefined;
    try {
      data = (await this.api.core.readNamespacedSecret({ name: this.config.name, namespace: this.namespace })).data;
    } catch (err) {
      if (isNotFound(err)) throw new SourceGoneError(`${where} not found: the user may have been offboarded, or the Secret was renamed`);
      const e = describeKubeError(err, { verb: 'get', resource: 'secrets', group: '', namespace: this.namespace, name: this.config.name });
      throw new UpstreamError(REASONS[e.failure], e.message);
    }
    const encoded = data?.[this.key];
    if (encoded === undefined) {
      const keys = Object.keys(data ?? {});
      throw new UpstreamError('missing-field', `${where} has no key "${this.key}" (it has: ${keys.join(', ') || 'no keys'})`);
    }
    // `kubectl create secret --from-file` keeps a trailing newline; a bearer token never has one.
    const token = Buffer.from(encoded, 'base64').toString('utf8').trim();
    if (!token) throw new UpstreamError('missing-field', `${where} key "${this.key}" is empty`);
    const now = this.clock.now();
    const expiresAt = this.expiryOf(token, now, where);
    if (expiresAt <= now) {
      throw new UpstreamError('malformed', `${where} key "${this.key}" holds a token that expired at ${new Date(expiresAt).toISOString()}; the platform that writes it has not refreshed it`);
    }
    return { token, expiresAt };
  }

  private expiryOf(token: string, now: number, where: string): number {
    const fingerprint = createHash('sha256').update(token).digest('hex');
    if (this.seen?.fingerprint !== fingerprint) {
      this.seen = { fingerprint, at: now };
      this.deps.logger?.info({ source: this.describe }, 'new token value in the source Secret');
    }
    const candidates = [jwtExpiry(token), this.lifetimeMs ? this.seen.at + this.lifetimeMs : undefined].filter((v): v is number => v !== undefined);
    if (!candidates.length) {
      throw new UpstreamError('config', `${where}: cannot tell when the token expires (not a JWT with exp); set lifetime in the source configuration`);
    }
    return Math.min(...candidates);
  }

  private get api(): KubeClients {
    this.clients ??= resolveKube(this.deps.kubernetes);
    return this.clients;
  }
}

export function createKubernetesSecretSource(config: Omit<KubernetesSecretSourceConfig, 'kind'>, deps: KubernetesSourceDeps = {}): KubernetesSecretSource {
  return new KubernetesSecretSource(config, deps);
}
