/**
 * The server's own rules, imported rather than copied so the form checks and the server never
 * disagree. Both files are pure constants and functions without Node imports.
 */
export { ACTOR_NAME, PERMISSIONS, SERVICE_PREFIX } from '../../src/authority/catalogue.js';
export { formatDuration, parseDuration } from '../../src/clock.js';

/** Tokens expiring within this window are highlighted (the same 7 days the shipped alerts warn at). */
export const EXPIRY_WARNING_MS = 7 * 86_400_000;
