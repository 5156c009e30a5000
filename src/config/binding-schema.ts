import { type Static, Type as T } from '@sinclair/typebox';

/**
 * A delivery binding: "keep a valid token of this identity with these scopes in these sinks,
 * and rotate it before it expires". One schema for the config file (`bindings:`) and the API.
 * (Durations are declared here again rather than imported from config.ts to keep the import
 * graph one-way: config.ts imports this file.)
 */
const Duration = T.Union([T.String({ pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|w)?\\s*$' }), T.Number({ minimum: 0 })], {
  description: 'a duration such as "90d", "12h", "30s", or a number of seconds',
});

export const BINDING_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$';
const K8S_NAME = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$';

export const FileSinkSpec = T.Object(
  {
    kind: T.Literal('file'),
    path: T.String({ minLength: 1, maxLength: 4096, description: 'absolute path of the file to keep the token in' }),
    mode: T.Optional(T.Union([T.String({ pattern: '^0?[0-7]{3}$' }), T.Integer({ minimum: 0, maximum: 0o777 })], { description: 'file mode, default "0600"' })),
    owner: T.Optional(
      T.Object({ uid: T.Integer({ minimum: 0 }), gid: T.Optional(T.Integer({ minimum: 0 })) }, { additionalProperties: false, description: 'chown the file (needs privilege)' }),
    ),
    adopt: T.Optional(
      T.Boolean({ description: 'replace a file that already exists and that tokenwarden did not create (refused by default)' }),
    ),
  },
  { additionalProperties: false },
);

export const KubernetesSecretSinkSpec = T.Object(
  {
    kind: T.Literal('kubernetes-secret'),
    namespace: T.String({ pattern: K8S_NAME, maxLength: 63 }),
    name: T.String({ pattern: K8S_NAME, maxLength: 253 }),
    key: T.Optional(T.String({ pattern: '^[-._a-zA-Z0-9]{1,253}$', description: 'default "token"' })),
    labels: T.Optional(T.Record(T.String(), T.String())),
    annotations: T.Optional(T.Record(T.String(), T.String())),
    adopt: T.Optional(
      T.Boolean({ description: 'take over a Secret that already exists and that tokenwarden did not create for this binding (refused by default)' }),
    ),
  },
  { additionalProperties: false },
);

export const SinkSpec = T.Union([FileSinkSpec, KubernetesSecretSinkSpec]);

export const ConfirmSpec = T.Union(
  [
    T.Literal('usage', { description: 'the new token has been seen in use and the old one has gone quiet' }),
    T.Literal('none'),
    T.Object(
      {
        probe: T.Object(
          {
            url: T.String({ pattern: '^https?://', description: 'answers 2xx when called with the new token' }),
            header: T.Optional(T.String({ description: 'send the token in this header instead of "Authorization: Bearer"' })),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
  ],
  { description: 'how the new token is confirmed before the old one is revoked' },
);

export const RotationSpec = T.Object(
  {
    at: T.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.66, description: 'rotate at this fraction of the lifetime' }),
    jitter: T.Number({ minimum: 0, maximum: 0.5, default: 0.05, description: 'spread rotations by ± this fraction of `at`' }),
    grace: T.Optional(Duration),
    confirm: T.Optional(ConfirmSpec),
    confirmTimeout: T.Optional(Duration),
    quiet: T.Optional(Duration),
  },
  { additionalProperties: false, default: {} },
);

export const RestartTarget = T.Object(
  {
    kind: T.Union([T.Literal('Deployment'), T.Literal('StatefulSet')]),
    namespace: T.String({ pattern: K8S_NAME, maxLength: 63 }),
    name: T.String({ pattern: K8S_NAME, maxLength: 253 }),
  },
  { additionalProperties: false },
);

export const BindingSpecSchema = T.Object(
  {
    name: T.String({ pattern: BINDING_NAME_PATTERN, description: 'lowercase letters, digits, ".", "_" and "-"' }),
    // Required when tokenwarden mints the token; unused (and optional) with `source:` (see mintFieldProblems).
    actor: T.Optional(T.String({ minLength: 1, maxLength: 128, description: 'the identity the token is issued for' })),
    scopes: T.Optional(T.Array(T.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 100 })),
    lifetime: T.Optional(Duration),
    sinks: T.Array(SinkSpec, { minItems: 1, maxItems: 20 }),
    rotation: T.Optional(RotationSpec),
    restart: T.Optional(T.Array(RestartTarget, { maxItems: 20, description: 'rollout-restart these consumers after each delivery' })),
    source: T.Optional(
      T.Object({ kind: T.String({ minLength: 1 }) }, { additionalProperties: true, description: 'deliver an upstream token instead of minting one' }),
    ),
    description: T.Optional(T.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);

export type BindingSpec = Static<typeof BindingSpecSchema>;

const MINT_FIELDS = ['actor', 'scopes', 'lifetime'] as const;

/**
 * A binding that mints its token needs `actor`, `scopes` and `lifetime`; one with `source:`
 * delivers an upstream's token and needs none of them. The schema cannot say "required unless",
 * so this does, for the config file and the API alike, naming each missing field.
 */
export function mintFieldProblems(spec: Partial<Pick<BindingSpec, 'actor' | 'scopes' | 'lifetime' | 'source'>>): { field: string; message: string }[] {
  if (spec.source) return [];
  return MINT_FIELDS.filter((f) => spec[f] === undefined).map((field) => ({
    field,
    message: `${field} is required for a binding that mints its token (one without source:)`,
  }));
}
/**
 * A binding's token must outlive a change of controller leader. It is rotated at `at` of its
 * lifetime (late by up to `jitter` of that), so it has lifetime × (1 − at × (1 + jitter)) left
 * then; a leader that dies at that moment and cannot be proved dead (another host, a paused
 * process, a PostgreSQL replica) is replaced after `takeoverMs` (the lease TTL and one tick).
 * A warning rather than a refusal: a single SQLite writer takes over at once after a crash.
 * One rule for the config file (`tokenwarden config check`, the start-up log) and the API
 * (`warnings` in the answer).
 */
export function takeoverWarning(lifetimeMs: number, rotation: { at?: number; jitter?: number } | undefined, takeoverMs: number): string | null {
  if (!(lifetimeMs > 0)) return null;
  const at = rotation?.at ?? RotationSpec.properties.at.default;
  const jitter = rotation?.jitter ?? RotationSpec.properties.jitter.default;
  const left = lifetimeMs * (1 - at * (1 + jitter));
  if (left >= takeoverMs) return null;
  const s = (ms: number) => `${Math.round(ms / 100) / 10}s`;
  return (
    `the token has only ${s(left)} left when it is rotated (lifetime × (1 − rotation.at, with its jitter)), less than the ${s(takeoverMs)} ` +
    'a new controller leader may need to take over from one that cannot be proved dead (delivery.leaseTtl plus delivery.interval); ' +
    'raise lifetime, lower rotation.at, or lower delivery.leaseTtl'
  );
}

export type SinkSpecT = Static<typeof SinkSpec>;
export type FileSinkSpecT = Static<typeof FileSinkSpec>;
export type KubernetesSecretSinkSpecT = Static<typeof KubernetesSecretSinkSpec>;
export type RestartTargetT = Static<typeof RestartTarget>;
export type ConfirmSpecT = Static<typeof ConfirmSpec>;
