import { createHash } from 'node:crypto';
import { type BindingSpec, type ConfirmSpecT, type SinkSpecT, mintFieldProblems } from '../../config/binding-schema.js';
import { parseDuration } from '../../clock.js';
import { problem } from '../../errors.js';
import type { BindingTable } from '../../store/bindings.js';
import { sinksHold } from './health.js';
import { RENEWAL_DEFAULTS, renewalAt, renewalProblem } from '../schedule.js';

export type Confirm = { mode: 'usage' } | { mode: 'none' } | { mode: 'probe'; url: string; header?: string };

export interface RotationPolicy {
  at: number;
  jitter: number;
  graceMs: number;
  confirm: Confirm;
  confirmTimeoutMs: number;
  /** Usage confirmation: how long the old token must have gone unused. */
  quietMs: number;
}

/** A binding as the controller uses it: the stored row plus its parsed spec and policy. */
export interface BindingRecord {
  id: string;
  name: string;
  spec: BindingSpec;
  /** The minted token's lifetime; 0 for a source binding without one (the upstream's expiry rules). */
  lifetimeMs: number;
  policy: RotationPolicy;
  row: BindingTable;
}

export const POLICY_DEFAULTS = { ...RENEWAL_DEFAULTS, grace: '1m', confirm: 'usage' as const, confirmTimeout: '1h', quiet: '1m' };

function duration(field: string, value: string | number | undefined, fallback: string, min = 0): number {
  const ms = parseDuration(value ?? fallback);
  if (ms === undefined || ms < min) throw problem.invalid(field, `${field} must be a duration such as "30s", "10m" or "1h"${min ? ` of at least ${min} ms` : ''}`);
  return ms;
}

function confirmOf(c: ConfirmSpecT | undefined): Confirm {
  if (c === undefined || c === 'usage') return { mode: 'usage' };
  if (c === 'none') return { mode: 'none' };
  return { mode: 'probe', url: c.probe.url, ...(c.probe.header ? { header: c.probe.header } : {}) };
}

/**
 * Fills defaults and checks what the schema cannot: durations, and that a rotation fraction
 * plus its jitter (a fraction of the lifetime) stays inside the lifetime. Errors name the field.
 */
export function normalizeSpec(spec: BindingSpec): { spec: BindingSpec; lifetimeMs: number; policy: RotationPolicy } {
  const missing = mintFieldProblems(spec)[0];
  if (missing) throw problem.invalid(missing.field, missing.message);
  const lifetimeMs = spec.lifetime === undefined ? 0 : duration('lifetime', spec.lifetime, '0', 1000);
  const r = spec.rotation ?? ({} as NonNullable<BindingSpec['rotation']>);
  const at = r.at ?? POLICY_DEFAULTS.at;
  const jitter = r.jitter ?? POLICY_DEFAULTS.jitter;
  const wrong = renewalProblem({ at, jitter });
  if (wrong) throw problem.invalid(`rotation.${wrong.field}`, `rotation.${wrong.field} ${wrong.message}`);
  const policy: RotationPolicy = {
    at,
    jitter,
    graceMs: duration('rotation.grace', r.grace, POLICY_DEFAULTS.grace),
    confirm: confirmOf(r.confirm),
    confirmTimeoutMs: duration('rotation.confirmTimeout', r.confirmTimeout, POLICY_DEFAULTS.confirmTimeout, 1),
    quietMs: duration('rotation.quiet', r.quiet, POLICY_DEFAULTS.quiet),
  };
  if (lifetimeMs && policy.graceMs >= lifetimeMs) throw problem.invalid('rotation.grace', 'rotation.grace must be shorter than the lifetime');
  const sinks = spec.sinks.map((s): SinkSpecT => (s.kind === 'file' ? s : { ...s, key: s.key ?? 'token' }));
  const seen = new Set<string>();
  sinks.forEach((s, i) => {
    const key = JSON.stringify(s.kind === 'file' ? [s.kind, s.path] : [s.kind, s.namespace, s.name, s.key]);
    if (seen.has(key)) throw problem.invalid(`sinks.${i}`, `sinks.${i} repeats another sink of this binding`);
    seen.add(key);
  });
  return { spec: { ...spec, sinks, rotation: { ...r, at, jitter } }, lifetimeMs, policy };
}

/** The parts of a spec that shape the token or where it goes: a change to them needs a new token. */
export function tokenShape(spec: BindingSpec): string {
  return JSON.stringify([spec.actor, [...(spec.scopes ?? [])].sort(), spec.lifetime, spec.sinks, spec.source ?? null]);
}

export function specHash(spec: BindingSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}

export function toRecord(row: BindingTable): BindingRecord {
  const parsed = normalizeSpec(JSON.parse(row.spec) as BindingSpec);
  return { id: row.id, name: row.name, spec: parsed.spec, lifetimeMs: parsed.lifetimeMs, policy: parsed.policy, row };
}

/**
 * A binding is healthy while a valid token is delivered — every sink holds it and it verifies, as
 * last checked (health.ts) — and its last attempt did not fail (nor find its source gone).
 */
export function isHealthy(row: Pick<BindingTable, 'token_id' | 'state' | 'token_expires_at' | 'sink_state'>, now: number): boolean {
  return row.token_id !== null && row.state !== 'failing' && row.state !== 'gone' && (row.token_expires_at ?? 0) > now && sinksHold(row);
}

/** When the token minted at `issuedAt` should be replaced: the one renewal schedule (schedule.ts). */
export function nextRotationAt(issuedAt: number, expiresAt: number, policy: RotationPolicy, random = Math.random): number {
  return renewalAt(issuedAt, expiresAt, policy, random);
}
