import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { type Static, Type as T } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../clock.js';
import { KubernetesConfigSchema, kubeConfigOptionsFrom } from '../kubernetes/kube-config.js';
import { BindingSpecSchema, mintFieldProblems, takeoverWarning } from './binding-schema.js';
import { describeSchemaErrors } from './problems.js';
import { trustedProxyProblem } from './trusted-proxies.js';

/** Durations are written as "90d", "12h", "30s" or a number of seconds. */
export const Duration = T.Union([T.String({ pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|w)?\\s*$' }), T.Number({ minimum: 0 })], {
  description: 'a duration such as "90d", "12h", "30s", or a number of seconds',
});

export const ServerConfigSchema = T.Object(
  {
    listen: T.Object(
      {
        host: T.String({ default: '127.0.0.1' }),
        port: T.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
        // How long an idle keep-alive connection stays open, on the main port and authListen (default 72s, src/tls.ts).
        keepAliveTimeout: T.Optional(Duration),
        front: T.Union([T.Literal('threads'), T.Literal('inline')], {
          default: 'threads',
          description:
            'threads: lean worker thread(s) own the port, answer GET /auth and pass everything else to the API over a private socket (the fast default); inline: one thread serves everything',
        }),
      },
      { default: {} },
    ),
    authListen: T.Optional(
      T.Object(
        { host: T.String({ default: '127.0.0.1' }), port: T.Integer({ minimum: 0, maximum: 65535 }) },
        {
          additionalProperties: false,
          description: 'a second listener serving only GET /auth, in a thread of its own: the fastest forward-auth check (docs/forward-auth.md)',
        },
      ),
    ),
    store: T.Object({ url: T.String({ default: '.data/tokenwarden.db', description: 'a SQLite file path, or postgres://…' }) }, { default: {} }),
    tokens: T.Object(
      {
        maxLifetime: T.Optional(Duration),
        defaultLifetime: T.Optional(Duration),
        bootstrapLifetime: T.Optional(Duration),
      },
      { default: {} },
    ),
    verify: T.Object(
      {
        cacheTtl: T.Optional(Duration),
        negativeCacheTtl: T.Optional(Duration),
        cacheSize: T.Integer({ minimum: 1, default: 100_000 }),
        failureLimit: T.Integer({ minimum: 0, default: 30, description: 'failed attempts per source address per window before 429; 0 turns the limit off' }),
        failureWindow: T.Optional(Duration),
        header: T.Optional(T.String({ description: 'an extra header to read the token from, e.g. X-Api-Key' })),
        trustedProxies: T.Array(T.String(), {
          default: ['127.0.0.1', '::1'],
          description: 'proxies (IPs or CIDR blocks) whose X-Forwarded-For is read, from the right (docs/forward-auth.md); [] trusts none',
        }),
        threads: T.Union([T.Literal('auto'), T.Integer({ minimum: 1, maximum: 64 })], {
          default: 'auto',
          description: 'threads answering GET /auth on the main port (listen.front: threads); auto (the default) = the CPUs this process may use where the runtime can share a port (Node >= 22.12 on Linux, reusePort), else 1. All threads count failures (verify.failureLimit) together',
        }),
      },
      { default: {} },
    ),
    tls: T.Optional(
      T.Object(
        {
          cert: T.String({ minLength: 1, description: 'PEM certificate chain file (e.g. tls.crt from a cert-manager Secret)' }),
          key: T.String({ minLength: 1, description: 'PEM private key file (e.g. tls.key)' }),
          reloadInterval: T.Optional(Duration),
        },
        { additionalProperties: false, description: 'serve HTTPS; the files are re-read when they change' },
      ),
    ),
    // Webhook notices before expiry, on rotation failure and for unused tokens (observe/notify.ts, docs/observability.md).
    notifications: T.Object(
      {
        webhookUrl: T.Optional(T.String({ pattern: '^https?://', description: 'where notices are POSTed as JSON; unset turns notifications off' })),
        secretFile: T.Optional(T.String({ description: 'file holding the HMAC-SHA256 key for X-Tokenwarden-Signature (or env TOKENWARDEN_WEBHOOK_SECRET)' })),
        expiryWarning: T.Optional(Duration),
        unusedFor: T.Optional(Duration),
        repeatAfter: T.Optional(Duration),
        checkInterval: T.Optional(Duration),
        timeout: T.Optional(Duration),
        retryAttempts: T.Integer({ minimum: 1, maximum: 50, default: 6 }),
        retryBackoff: T.Optional(Duration),
      },
      { default: {}, additionalProperties: false },
    ),
    log: T.Object({ level: T.Union([T.Literal('fatal'), T.Literal('error'), T.Literal('warn'), T.Literal('info'), T.Literal('debug'), T.Literal('trace'), T.Literal('silent')], { default: 'info' }) }, { default: {} }),
    // Delivery bindings declared here are reconciled into the store at start (see docs/bindings.md).
    bindings: T.Array(BindingSpecSchema, { default: [] }),
    delivery: T.Object(
      {
        keyFile: T.Optional(T.String({ description: 'AES-256 key sealing in-flight rotation tokens; default: delivery.key next to the SQLite file (share it between replicas)' })),
        interval: T.Optional(Duration),
        resync: T.Optional(Duration),
        urgentRetry: T.Optional(Duration),
        leaseTtl: T.Optional(Duration),
        enabled: T.Boolean({ default: true, description: 'run the delivery controller in this process' }),
        fileRoots: T.Array(T.String({ minLength: 1 }), {
          default: [],
          description:
            'absolute directories under which file sinks of bindings created through the API or CLI may write; none by default (bindings in this file may name any path)',
        }),
        leader: T.Union([T.Literal('store'), T.Literal('kubernetes')], {
          default: 'store',
          description: 'how replicas elect the controller leader: a lease row in the store, or a coordination.k8s.io Lease (settings in kubernetes.lease)',
        }),
      },
      { default: {} },
    ),
    // Where the cluster is for Kubernetes sinks, sources, restarts and the Lease (docs/kubernetes.md); connected on first use only.
    kubernetes: T.Optional(KubernetesConfigSchema),
  },
  { additionalProperties: true },
);

export type ServerConfig = Static<typeof ServerConfigSchema>;

export interface ResolvedConfig extends ServerConfig {
  /** The configuration file this was read from (absolute), if any: no sink may write over it. */
  sourceFile?: string;
  durations: {
    maxLifetimeMs: number;
    defaultLifetimeMs: number;
    /** The first admin token's lifetime (default 24 h, never beyond maxLifetime). */
    bootstrapLifetimeMs: number;
    cacheTtlMs: number;
    negativeTtlMs: number;
    failureWindowMs: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`configuration is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** TOKENWARDEN_STORE_URL=… sets store.url; TOKENWARDEN_LISTEN_PORT=… sets listen.port. Env wins over the file. */
const ENV_KEYS: Record<string, [string, string, 'string' | 'int' | 'list' | 'auto-int']> = {
  TOKENWARDEN_LISTEN_HOST: ['listen', 'host', 'string'],
  TOKENWARDEN_LISTEN_PORT: ['listen', 'port', 'int'],
  TOKENWARDEN_LISTEN_FRONT: ['listen', 'front', 'string'],
  TOKENWARDEN_VERIFY_THREADS: ['verify', 'threads', 'auto-int'],
  TOKENWARDEN_AUTH_LISTEN_HOST: ['authListen', 'host', 'string'],
  TOKENWARDEN_AUTH_LISTEN_PORT: ['authListen', 'port', 'int'],
  TOKENWARDEN_STORE_URL: ['store', 'url', 'string'],
  TOKENWARDEN_MAX_TOKEN_LIFETIME: ['tokens', 'maxLifetime', 'string'],
  TOKENWARDEN_DEFAULT_TOKEN_LIFETIME: ['tokens', 'defaultLifetime', 'string'],
  TOKENWARDEN_BOOTSTRAP_LIFETIME: ['tokens', 'bootstrapLifetime', 'string'],
  TOKENWARDEN_LOG_LEVEL: ['log', 'level', 'string'],
  TOKENWARDEN_NOTIFY_WEBHOOK_URL: ['notifications', 'webhookUrl', 'string'],
  TOKENWARDEN_NOTIFY_SECRET_FILE: ['notifications', 'secretFile', 'string'],
  TOKENWARDEN_TLS_CERT: ['tls', 'cert', 'string'],
  TOKENWARDEN_TLS_KEY: ['tls', 'key', 'string'],
  TOKENWARDEN_VERIFY_FAILURE_LIMIT: ['verify', 'failureLimit', 'int'],
  TOKENWARDEN_VERIFY_CACHE_TTL: ['verify', 'cacheTtl', 'string'],
  TOKENWARDEN_DELIVERY_KEY_FILE: ['delivery', 'keyFile', 'string'],
  TOKENWARDEN_DELIVERY_RESYNC: ['delivery', 'resync', 'string'],
  TOKENWARDEN_DELIVERY_URGENT_RETRY: ['delivery', 'urgentRetry', 'string'],
  TOKENWARDEN_DELIVERY_LEADER: ['delivery', 'leader', 'string'],
  // A list: comma or colon separated, like PATH.
  TOKENWARDEN_DELIVERY_FILE_ROOTS: ['delivery', 'fileRoots', 'list'],
};

/**
 * How long the delivery controller can go without a leader after one dies unseen: its lease
 * (`delivery.leaseTtl`, default 15 s, or the Kubernetes Lease's duration) plus one tick.
 */
export function controllerTakeover(config: Pick<ServerConfig, 'delivery' | 'kubernetes'>): { leaseTtlMs: number; intervalMs: number; takeoverMs: number } {
  const leaseTtlMs = parseDuration(config.delivery.leaseTtl ?? '15s')!;
  const intervalMs = parseDuration(config.delivery.interval ?? '1s')!;
  const k8s = config.delivery.leader === 'kubernetes' ? config.kubernetes?.lease?.durationSeconds : undefined;
  return { leaseTtlMs, intervalMs, takeoverMs: (k8s !== undefined ? k8s * 1000 : leaseTtlMs) + intervalMs };
}

/** Config bindings whose token could run out while a new leader takes over (takeoverWarning), each naming its field. */
export function takeoverWarnings(config: Pick<ServerConfig, 'delivery' | 'kubernetes' | 'bindings'>): string[] {
  const { takeoverMs } = controllerTakeover(config);
  return (config.bindings ?? []).flatMap((b, i) => {
    const lifetimeMs = b.lifetime === undefined ? 0 : (parseDuration(b.lifetime) ?? 0);
    const warning = takeoverWarning(lifetimeMs, b.rotation, takeoverMs);
    return warning ? [`bindings[${i}].lifetime (${b.name}): ${warning}`] : [];
  });
}

/** The first admin token's lifetime unless `tokens.bootstrapLifetime` says otherwise (never beyond the maximum). */
export const DEFAULT_BOOTSTRAP_LIFETIME_MS = 86_400_000;

export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Record<string, Record<string, unknown>> } = {}): ResolvedConfig {
  let raw: Record<string, any> = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError([`cannot read ${options.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
    }
    try {
      raw = (parseYaml(text) as Record<string, any>) ?? {};
    } catch (err) {
      throw new ConfigError([`${options.file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError([`${options.file} must hold a YAML mapping`]);
  }
  const env = options.env ?? process.env;
  const problems: string[] = [];
  const envSources = new Map<string, string>();
  for (const [name, [section, key, kind]] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    envSources.set(`${section}.${key}`, name);
    raw[section] ??= {};
    if (kind === 'int') {
      if (!/^\d+$/.test(value)) problems.push(`${name} must be a whole number, got "${value}"`);
      raw[section][key] = Number(value);
    } else if (kind === 'list') {
      raw[section][key] = value
        .split(/[,:]/)
        .map((v) => v.trim())
        .filter(Boolean);
    } else if (kind === 'auto-int') raw[section][key] = /^\d+$/.test(value) ? Number(value) : value;
    else raw[section][key] = value;
  }
  for (const [section, values] of Object.entries(options.overrides ?? {})) {
    raw[section] = { ...(raw[section] ?? {}), ...Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) };
  }
  const withDefaults = Value.Default(ServerConfigSchema, Value.Clone(raw)) as ServerConfig;
  problems.push(...describeSchemaErrors(Value.Errors(ServerConfigSchema, withDefaults), envSources));
  for (const [i, b] of (withDefaults.bindings ?? []).entries()) {
    if (b && typeof b === 'object') for (const p of mintFieldProblems(b)) problems.push(`bindings[${i}].${p.field}: ${p.message}`);
  }
  try {
    kubeConfigOptionsFrom(withDefaults.kubernetes);
  } catch (err) {
    problems.push((err as Error).message);
  }
  for (const [i, root] of (withDefaults.delivery?.fileRoots ?? []).entries()) {
    if (typeof root === 'string' && !isAbsolute(root)) {
      const from = envSources.get('delivery.fileRoots');
      problems.push(`delivery.fileRoots[${i}]${from ? ` (from ${from})` : ''}: "${root}" is not an absolute directory; write it as /var/lib/tokens or similar`);
    }
  }
  for (const [i, entry] of (Array.isArray(withDefaults.verify?.trustedProxies) ? withDefaults.verify.trustedProxies : []).entries()) {
    const p = typeof entry === 'string' ? trustedProxyProblem(entry) : undefined;
    if (p) problems.push(`verify.trustedProxies[${i}]: ${p}; list the proxies in front of tokenwarden by address or CIDR block`);
  }
  const auth = withDefaults.authListen;
  if (auth && auth.port !== 0 && auth.port === withDefaults.listen.port && (auth.host === withDefaults.listen.host || [auth.host, withDefaults.listen.host].includes('0.0.0.0'))) {
    problems.push(`authListen.port: ${auth.port} is already listen.port; give the auth listener a port of its own (e.g. ${auth.port + 1})`);
  }
  if (withDefaults.kubernetes?.lease && withDefaults.delivery.leader !== 'kubernetes') {
    problems.push('kubernetes.lease: set delivery.leader: kubernetes to elect the leader with this Lease (or remove kubernetes.lease)');
  }
  if (problems.length) throw new ConfigError(problems);
  const d = (value: string | number | undefined, fallback: string) => parseDuration(value ?? fallback)!;
  const maxLifetimeMs = d(withDefaults.tokens.maxLifetime, '365d');
  const durations = {
    maxLifetimeMs,
    defaultLifetimeMs: d(withDefaults.tokens.defaultLifetime, '90d'),
    bootstrapLifetimeMs:
      withDefaults.tokens.bootstrapLifetime === undefined ? Math.min(DEFAULT_BOOTSTRAP_LIFETIME_MS, maxLifetimeMs) : d(withDefaults.tokens.bootstrapLifetime, '24h'),
    cacheTtlMs: d(withDefaults.verify.cacheTtl, '10s'),
    negativeTtlMs: d(withDefaults.verify.negativeCacheTtl, '30s'),
    failureWindowMs: d(withDefaults.verify.failureWindow, '1m'),
  };
  if (durations.defaultLifetimeMs > durations.maxLifetimeMs) {
    throw new ConfigError([`tokens.defaultLifetime is longer than tokens.maxLifetime`]);
  }
  if (durations.bootstrapLifetimeMs > durations.maxLifetimeMs || durations.bootstrapLifetimeMs <= 0) {
    throw new ConfigError([`tokens.bootstrapLifetime must be a positive duration no longer than tokens.maxLifetime`]);
  }
  return { ...withDefaults, durations, ...(options.file ? { sourceFile: resolve(options.file) } : {}) };
}
