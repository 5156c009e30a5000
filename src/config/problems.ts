import type { TSchema } from '@sinclair/typebox';
import { type ValueError, ValueErrorType } from '@sinclair/typebox/value';

/** Field names whose values are never echoed back in an error. */
const SECRET_KEY = /pass|secret|token|key|credential/i;

/** `/tls/cert` → `tls.cert`; array items as `bindings[0].name`. */
export function dottedPath(pointer: string): string {
  return (
    pointer
      .replace(/^\//, '')
      .split('/')
      .filter(Boolean)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '') || '(root)'
  );
}

function shown(path: string, value: unknown): string {
  if (value === undefined) return '';
  if (SECRET_KEY.test(path.split('.').pop() ?? '')) return ' (value hidden)';
  const text = JSON.stringify(value) ?? String(value);
  return `, got ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`;
}

function literals(schema: TSchema): unknown[] | undefined {
  const options = (schema as { anyOf?: TSchema[] }).anyOf;
  if (!options?.every((o) => 'const' in o)) return undefined;
  return options.map((o) => (o as unknown as { const: unknown }).const);
}

/** What the operator should write instead, from the schema itself. */
function hint(err: ValueError): string {
  const s = err.schema as TSchema & { description?: string; minimum?: number; maximum?: number; properties?: Record<string, unknown> };
  if (err.type === ValueErrorType.ObjectAdditionalProperties) {
    const known = Object.keys(s.properties ?? {});
    return `remove it or fix its spelling${known.length ? ` (known here: ${known.join(', ')})` : ''}`;
  }
  if (err.type === ValueErrorType.ObjectRequiredProperty) return 'add it';
  const allowed = literals(s);
  if (allowed) return `use one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`;
  if (s.description) return `expected ${s.description}`;
  if (s.minimum !== undefined || s.maximum !== undefined) {
    return `expected a number${s.minimum !== undefined ? ` ≥ ${s.minimum}` : ''}${s.maximum !== undefined ? ` and ≤ ${s.maximum}` : ''}`;
  }
  return '';
}

/**
 * One line per problem: where (the dotted path, and the environment variable if it came from
 * one), what is wrong, the value found (unless it may be secret), and what to write instead.
 */
export function describeSchemaError(err: ValueError, envSources: ReadonlyMap<string, string> = new Map()): string {
  const path = dottedPath(err.path);
  const from = envSources.get(path);
  const what = err.type === ValueErrorType.ObjectAdditionalProperties ? 'is not a known setting' : err.message.replace(/^Expected/, 'expected').replace(/^Unexpected/, 'unexpected');
  const value = err.type === ValueErrorType.ObjectAdditionalProperties || err.type === ValueErrorType.ObjectRequiredProperty ? undefined : err.value;
  const todo = hint(err);
  if (err.type === ValueErrorType.Union && value !== undefined) {
    // "expected union value" means nothing to an operator: say which value is wrong instead.
    const v = shown(path, value);
    const subject = v.startsWith(', got ') ? `${v.slice(6)} is not valid` : `the value is not valid${v}`;
    return `${path}${from ? ` (from ${from})` : ''}: ${subject}${todo ? `; ${todo}` : ''}`;
  }
  return `${path}${from ? ` (from ${from})` : ''}: ${what}${shown(path, value)}${todo ? `; ${todo}` : ''}`;
}

/** One line per faulty setting: the first (most specific) error at each path. */
export function describeSchemaErrors(errors: Iterable<ValueError>, envSources: ReadonlyMap<string, string> = new Map()): string[] {
  const byPath = new Map<string, string>();
  for (const err of errors) if (!byPath.has(err.path)) byPath.set(err.path, describeSchemaError(err, envSources));
  return [...byPath.values()];
}

/** Top-level keys that no part of tokenwarden reads: most often a typo (`listn:`). */
export function unknownTopLevelKeys(schema: TSchema, raw: Record<string, unknown>): string[] {
  const known = new Set(Object.keys((schema as { properties?: Record<string, unknown> }).properties ?? {}));
  return Object.keys(raw).filter((k) => !known.has(k));
}
