import { readFileSync } from 'node:fs';
import { type Static, Type as T } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { BINDING_NAME_PATTERN, SinkSpec } from '../config/binding-schema.js';
import { ConfigError, Duration } from '../config/server-config.js';
import { RENEWAL_DEFAULTS, renewalProblem } from '../delivery/schedule.js';
import { HTTP_SOURCE_KINDS, RefreshSchema, checkHttpSource } from '../sources/source-config.js';
import { SecretRefSchema, isSecretRef } from '../sources/secret-ref.js';

/** A token tokenwarden mints on a remote server (the agent holds a token with admin:token or the right scopes). */
const MintSpec = T.Object(
  {
    actor: T.String({ minLength: 1 }),
    scopes: T.Array(T.String({ minLength: 1 }), { minItems: 1 }),
    lifetime: Duration,
    grace: T.Optional(Duration),
  },
  { additionalProperties: false },
);

const AgentBinding = T.Object(
  {
    name: T.String({ pattern: BINDING_NAME_PATTERN }),
    source: T.Optional(T.Object({ kind: T.String() }, { additionalProperties: true })),
    mint: T.Optional(MintSpec),
    refresh: T.Optional(RefreshSchema),
    sinks: T.Array(SinkSpec, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export const AgentConfigSchema = T.Object(
  {
    state: T.Object(
      {
        file: T.String({ default: 'tokenwarden-agent.state.json', description: 'small JSON state (0600, replaced atomically); holds no plaintext secret' }),
        key: T.Optional(SecretRefSchema),
      },
      { default: {}, additionalProperties: false },
    ),
    server: T.Optional(
      T.Object({ url: T.String({ pattern: '^https?://' }), token: SecretRefSchema, caFile: T.Optional(T.String()), timeout: T.Optional(Duration) }, { additionalProperties: false }),
    ),
    metrics: T.Optional(T.Object({ host: T.String({ default: '127.0.0.1' }), port: T.Integer({ minimum: 0, maximum: 65535 }) }, { additionalProperties: false })),
    log: T.Object({ level: T.String({ default: 'info' }) }, { default: {}, additionalProperties: false }),
    bindings: T.Array(AgentBinding, { minItems: 1 }),
  },
  { additionalProperties: false },
);

export type AgentConfig = Static<typeof AgentConfigSchema>;
export type AgentBindingConfig = Static<typeof AgentBinding>;

/** Reads and checks agent.yaml; every problem names its field (`bindings[0].source.body.password: …`). */
export function loadAgentConfig(file: string): AgentConfig {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8')) ?? {};
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([code ? `cannot read ${file}: ${code}` : `${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
  return checkAgentConfig(raw);
}

export function checkAgentConfig(raw: unknown): AgentConfig {
  const problems: string[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(['the agent configuration must be a YAML mapping']);
  const server = (raw as { server?: { token?: unknown } }).server;
  if (server?.token !== undefined && !isSecretRef(server.token)) {
    problems.push('server.token: a literal secret in the configuration is refused; put it in an environment variable or a file and write { env: NAME } or { file: /path }');
  }
  const bindings = (raw as { bindings?: unknown }).bindings;
  if (Array.isArray(bindings)) {
    const names = new Set<string>();
    bindings.forEach((b: Record<string, unknown>, i) => {
      const field = `bindings[${i}]`;
      if (!b || typeof b !== 'object') return;
      if (typeof b.name === 'string') {
        if (names.has(b.name)) problems.push(`${field}.name: "${b.name}" is used twice`);
        names.add(b.name);
      }
      if (!!b.source === !!b.mint) problems.push(`${field}: set exactly one of source (an upstream's token) or mint (a tokenwarden token)`);
      const src = b.source as { kind?: unknown } | undefined;
      if (src && (HTTP_SOURCE_KINDS as readonly string[]).includes(String(src.kind))) problems.push(...checkHttpSource(src, `${field}.source`));
      else if (src && src.kind !== 'kubernetes-secret') problems.push(`${field}.source.kind: must be one of ${HTTP_SOURCE_KINDS.join(', ')}, kubernetes-secret`);
      if (b.mint && !(raw as { server?: unknown }).server) problems.push(`${field}.mint: needs server (url and token) to mint against`);
      const r = (b as { refresh?: { at?: number; jitter?: number } }).refresh;
      if (r && typeof (r.at ?? 0) === 'number' && typeof (r.jitter ?? 0) === 'number') {
        const wrong = renewalProblem({ at: r.at ?? RENEWAL_DEFAULTS.at, jitter: r.jitter ?? RENEWAL_DEFAULTS.jitter });
        if (wrong) problems.push(`${field}.refresh.${wrong.field}: ${wrong.message}`);
      }
    });
  }
  if (problems.length) throw new ConfigError(problems);
  const withDefaults = Value.Default(AgentConfigSchema, Value.Clone(raw));
  for (const err of Value.Errors(AgentConfigSchema, withDefaults)) {
    const path = err.path.replace(/^\//, '').replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.');
    problems.push(`${path || '(root)'}: ${err.message}`);
  }
  if (problems.length) throw new ConfigError([...new Set(problems)]);
  return withDefaults as AgentConfig;
}
