import { readFileSync } from 'node:fs';
import { type Static, Type as T } from '@sinclair/typebox';

/**
 * Where a source credential lives. Configuration names the place (an environment variable or a
 * file, e.g. a mounted Secret), never the value: a config file is read by many and committed to
 * git, so a literal secret in it is refused.
 */
export const SecretRefSchema = T.Union(
  [
    T.Object({ env: T.String({ minLength: 1, description: 'name of an environment variable holding the value' }) }, { additionalProperties: false }),
    T.Object({ file: T.String({ minLength: 1, description: 'path of a file holding the value (trailing newline trimmed)' }) }, { additionalProperties: false }),
  ],
  { description: '{ env: NAME } or { file: /path }; literal secrets are refused' },
);
export type SecretRef = Static<typeof SecretRefSchema>;

/** A value that is not secret may be written inline; a secret one must be a reference. */
export const ValueOrRefSchema = T.Union([T.String(), T.Number(), T.Boolean(), SecretRefSchema]);
export type ValueOrRef = Static<typeof ValueOrRefSchema>;

export class SecretRefError extends Error {}

export function isSecretRef(value: unknown): value is SecretRef {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && ('env' in value || 'file' in value);
}

/** Names that carry a credential; a literal value under one of them is refused. */
const SECRET_NAME = /pass|secret|token|api[-_]?key|apikey|credential|pwd|authorization|cookie|assertion/i;

export function looksSecret(name: string): boolean {
  return SECRET_NAME.test(name);
}

export function refuseLiteral(field: string, value: unknown): void {
  if (value !== undefined && !isSecretRef(value)) {
    throw new SecretRefError(
      `${field}: a literal secret in the configuration is refused; put it in an environment variable or a file and write ${field}: { env: NAME } or { file: /path }`,
    );
  }
}

/** Describes a reference for logs and errors (the place, never the value). */
export function describeRef(ref: SecretRef): string {
  return 'env' in ref ? `env ${ref.env}` : `file ${ref.file}`;
}

/** Reads the value now (files are re-read on every fetch so a rotated mounted Secret is picked up). */
export function resolveSecret(field: string, ref: SecretRef, env: NodeJS.ProcessEnv = process.env): string {
  if ('env' in ref) {
    const value = env[ref.env];
    if (value === undefined || value === '') throw new SecretRefError(`${field}: environment variable ${ref.env} is not set`);
    return value;
  }
  let text: string;
  try {
    text = readFileSync(ref.file, 'utf8');
  } catch (err) {
    throw new SecretRefError(`${field}: cannot read file ${ref.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const value = text.replace(/\r?\n$/, '');
  if (!value) throw new SecretRefError(`${field}: file ${ref.file} is empty`);
  return value;
}

export function resolveValue(field: string, value: ValueOrRef, env?: NodeJS.ProcessEnv): string {
  return isSecretRef(value) ? resolveSecret(field, value, env) : String(value);
}
