import { decodeJwt } from 'jose';
import { UpstreamError } from './upstream-http.js';

/** The JWT `exp` in epoch ms, or undefined when the token is not a JWT or has no `exp`. The signature is not checked: this only schedules. */
export function jwtExpiry(token: string): number | undefined {
  if (token.split('.').length !== 3) return undefined;
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function expiresInMs(value: unknown): number | undefined {
  const n = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n * 1000 : undefined;
}

/**
 * When the token dies: the earliest of the JWT `exp`, `expires_in` (seconds) and the configured
 * lifetime. Taking the earliest keeps the schedule safe when an upstream's claims disagree, and
 * lets `lifetime` shorten the refresh interval on purpose.
 */
export function expiryOf(token: string, options: { now: number; expiresIn?: unknown; lifetimeMs?: number; where: string }): number {
  const candidates = [
    jwtExpiry(token),
    (() => {
      const ms = expiresInMs(options.expiresIn);
      return ms === undefined ? undefined : options.now + ms;
    })(),
    options.lifetimeMs ? options.now + options.lifetimeMs : undefined,
  ].filter((v): v is number => v !== undefined);
  if (!candidates.length) {
    throw new UpstreamError(
      'config',
      `${options.where}: cannot tell when the token expires (not a JWT with exp, no expires_in in the answer); set lifetime in the source configuration`,
    );
  }
  const expiresAt = Math.min(...candidates);
  if (expiresAt <= options.now) throw new UpstreamError('malformed', `${options.where}: the upstream returned a token that has already expired`);
  return expiresAt;
}
