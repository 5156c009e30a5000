import { type Static, type TSchema, Type as T } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Duration } from '../config/server-config.js';
import { SecretRefSchema, ValueOrRefSchema, isSecretRef, looksSecret } from './secret-ref.js';

const Headers = T.Record(T.String(), ValueOrRefSchema, { description: 'extra request headers; secret ones (Authorization, X-Api-Key, …) as { env } or { file }' });
const Tls = {
  caFile: T.Optional(T.String({ description: 'PEM file of the CA that signed the upstream certificate' })),
  insecureSkipVerify: T.Optional(T.Boolean({ description: 'skip TLS verification (logged as a warning); for labs only' })),
};
const Common = {
  timeout: T.Optional(Duration),
  lifetime: T.Optional(Duration),
  headers: T.Optional(Headers),
  ...Tls,
};

export const HttpLoginSchema = T.Object(
  {
    kind: T.Literal('http-login'),
    url: T.String({ pattern: '^https?://', description: 'the login endpoint, e.g. https://cpd.example.com/icp4d-api/v1/authorize' }),
    bodyFormat: T.Optional(T.Union([T.Literal('json'), T.Literal('form')])),
    body: T.Record(T.String(), ValueOrRefSchema, { description: 'request body fields; credentials as { env } or { file }' }),
    tokenPath: T.Optional(T.String({ description: 'where the token is in the JSON answer (default .token)' })),
    expiresInPath: T.Optional(T.String({ description: 'where a lifetime in seconds is in the answer (default .expires_in)' })),
    ...Common,
  },
  { additionalProperties: false },
);

const OAuth2Common = {
  tokenUrl: T.String({ pattern: '^https?://' }),
  clientId: T.Optional(ValueOrRefSchema),
  clientSecret: T.Optional(SecretRefSchema),
  authMethod: T.Optional(T.Union([T.Literal('client_secret_basic'), T.Literal('client_secret_post')])),
  scopes: T.Optional(T.Array(T.String())),
  audience: T.Optional(T.String()),
  resource: T.Optional(T.String()),
  tokenPath: T.Optional(T.String({ description: 'default .access_token' })),
  ...Common,
};

export const OAuth2ClientCredentialsSchema = T.Object(
  { kind: T.Literal('oauth2-client-credentials'), ...OAuth2Common, clientId: ValueOrRefSchema, clientSecret: SecretRefSchema },
  { additionalProperties: false },
);

export const OAuth2RefreshTokenSchema = T.Object(
  {
    kind: T.Literal('oauth2-refresh-token'),
    ...OAuth2Common,
    refreshToken: SecretRefSchema, // the first one; later rotated ones are kept sealed in the state
  },
  { additionalProperties: false },
);

/** The HTTP-based sources this module builds (kubernetes-secret is configured by its own module). */
export const HttpSourceSchema = T.Union([HttpLoginSchema, OAuth2ClientCredentialsSchema, OAuth2RefreshTokenSchema]);
export type HttpLoginConfig = Static<typeof HttpLoginSchema>;
export type OAuth2ClientCredentialsConfig = Static<typeof OAuth2ClientCredentialsSchema>;
export type OAuth2RefreshTokenConfig = Static<typeof OAuth2RefreshTokenSchema>;
export type HttpSourceConfig = Static<typeof HttpSourceSchema>;

export const HTTP_SOURCE_KINDS = ['http-login', 'oauth2-client-credentials', 'oauth2-refresh-token'] as const;

/** Refresh timing per binding. */
export const RefreshSchema = T.Object(
  {
    at: T.Optional(T.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'fraction of the lifetime after which to refresh (default 0.66, as for server bindings)' })),
    jitter: T.Optional(T.Number({ minimum: 0, maximum: 0.3, description: 'random spread as a fraction of the lifetime (default 0.05)' })),
    retryInitial: T.Optional(Duration),
    retryMax: T.Optional(Duration),
  },
  { additionalProperties: false },
);

/**
 * Literal secrets first (the clearest message wins), then the schema. Returns the list of
 * problems, each naming the field, e.g. `bindings[0].source.body.password: …`.
 */
export function checkHttpSource(raw: unknown, field: string): string[] {
  if (typeof raw !== 'object' || raw === null) return [`${field}: must be a mapping with a kind`];
  const src = raw as Record<string, unknown>;
  const problems: string[] = [];
  const refuse = (f: string) =>
    problems.push(`${field}.${f}: a literal secret in the configuration is refused; put it in an environment variable or a file and write { env: NAME } or { file: /path }`);
  for (const group of ['body', 'headers'] as const) {
    const entries = src[group];
    if (entries && typeof entries === 'object') {
      for (const [k, v] of Object.entries(entries)) if (looksSecret(k) && !isSecretRef(v)) refuse(`${group}.${k}`);
    }
  }
  for (const k of ['clientSecret', 'refreshToken']) if (src[k] !== undefined && !isSecretRef(src[k])) refuse(k);
  if (problems.length) return problems;
  const schema: TSchema | undefined = { 'http-login': HttpLoginSchema, 'oauth2-client-credentials': OAuth2ClientCredentialsSchema, 'oauth2-refresh-token': OAuth2RefreshTokenSchema }[
    String(src.kind)
  ];
  if (!schema) return [`${field}.kind: must be one of ${HTTP_SOURCE_KINDS.join(', ')}, kubernetes-secret`];
  for (const err of Value.Errors(schema, raw)) {
    const path = err.path.replace(/^\//, '').replace(/\//g, '.');
    problems.push(`${field}${path ? `.${path}` : ''}: ${err.message}`);
  }
  return [...new Set(problems)];
}
