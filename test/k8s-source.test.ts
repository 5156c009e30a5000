import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { createKubernetesSecretSink } from '../src/delivery/sinks/secret-sink.js';
import type { KubeClients } from '../src/kubernetes/client.js';
import { SourceGoneError, createKubernetesSecretSource } from '../src/sources/secret-source.js';
import { SourceRefresher } from '../src/delivery/refresh/refresher.js';
import { UpstreamError } from '../src/sources/upstream-http.js';
import { type KubernetesEmulator, useKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret } from './support/output.js';

// Seed 002: a platform keeps a 10–30 minute token in Secret access-token, key AUTH_TOKEN, in the user's namespace.
const USER_NS = 'user-alice';
let k8s: KubernetesEmulator;
let kube: KubeClients;
const clock = new ManualClock(Date.UTC(2026, 3, 1, 9, 0, 0));
const { logger } = useKubernetesEmulator({ namespaces: ['default', USER_NS, 'tools'], logName: 'k8s-source' }, (cluster) => ({ k8s, kube } = cluster));
const signingKey = new TextEncoder().encode(`platform-signing-key-${process.pid}-${Math.random()}`);

async function jwt(expSeconds: number, subject = 'alice'): Promise<string> {
  const token = await new SignJWT({ scope: 'api' }).setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setIssuedAt().setExpirationTime(expSeconds).sign(signingKey);
  return rememberSecret(token);
}

function platformWrites(token: string, extra: Record<string, string> = {}): void {
  k8s.seed('secrets', {
    metadata: { name: 'access-token', namespace: USER_NS },
    stringData: { AUTH_TOKEN: token, ...extra },
  });
}

const source = (lifetime?: string) =>
  createKubernetesSecretSource({ namespace: USER_NS, name: 'access-token', key: 'AUTH_TOKEN', ...(lifetime ? { lifetime } : {}) }, { kubernetes: kube, clock, logger });

describe('kubernetes-secret source', () => {
  it('reads the token and takes its expiry from the JWT exp, and follows the platform rewriting it', async () => {
    const exp1 = Math.floor(clock.now() / 1000) + 20 * 60;
    const first = await jwt(exp1);
    platformWrites(first);
    const s = source();
    expect(s.describe).toBe('kubernetes-secret user-alice/access-token#AUTH_TOKEN');
    expect(await s.fetch()).toEqual({ token: first, expiresAt: exp1 * 1000 });

    clock.advance(15 * 60_000);
    const exp2 = Math.floor(clock.now() / 1000) + 30 * 60;
    const second = await jwt(exp2);
    platformWrites(second);
    expect(await s.fetch()).toEqual({ token: second, expiresAt: exp2 * 1000 });
  });

  it('an opaque token expires `lifetime` after it was first seen; an earlier JWT exp wins over lifetime', async () => {
    const opaque = rememberSecret(`opaque-${Math.random().toString(36).slice(2)}-${Date.now()}`);
    platformWrites(`${opaque}\n`); // as `kubectl create secret --from-file` leaves it
    const s = source('10m');
    const seenAt = clock.now();
    expect(await s.fetch()).toEqual({ token: opaque, expiresAt: seenAt + 600_000 });
    clock.advance(120_000);
    expect((await s.fetch()).expiresAt).toBe(seenAt + 600_000); // same value: same expiry

    const shortJwt = await jwt(Math.floor(clock.now() / 1000) + 60);
    platformWrites(shortJwt);
    expect((await s.fetch()).expiresAt).toBe((Math.floor(clock.now() / 1000) + 60) * 1000);

    platformWrites(opaque);
    const noLifetime = await source().fetch().catch((e: unknown) => e);
    expect(noLifetime).toBeInstanceOf(UpstreamError);
    expect((noLifetime as UpstreamError).reason).toBe('config');
    expect((noLifetime as Error).message).toContain('set lifetime');
  });

  it('a token the platform let expire, or a missing key, is an error that says so', async () => {
    platformWrites(await jwt(Math.floor(clock.now() / 1000) - 5));
    const expired = await source().fetch().catch((e: unknown) => e);
    expect((expired as Error).message).toMatch(/expired at .*the platform that writes it has not refreshed it/);

    k8s.seed('secrets', { metadata: { name: 'access-token', namespace: USER_NS }, stringData: { OTHER: 'x' } });
    const missing = await source().fetch().catch((e: unknown) => e);
    expect((missing as UpstreamError).reason).toBe('missing-field');
    expect((missing as Error).message).toBe('Secret user-alice/access-token has no key "AUTH_TOKEN" (it has: OTHER)');
  });

  it('a deleted Secret is reported as gone (the user may have been offboarded), not as a transient failure', async () => {
    platformWrites(await jwt(Math.floor(clock.now() / 1000) + 600));
    const s = source();
    await s.fetch();
    k8s.remove('secrets', USER_NS, 'access-token');
    const err = await s.fetch().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceGoneError);
    expect((err as Error).message).toBe('Secret user-alice/access-token not found: the user may have been offboarded, or the Secret was renamed');

    k8s.forbid({ namespace: USER_NS });
    const denied = await s.fetch().catch((e: unknown) => e);
    expect((denied as UpstreamError).reason).toBe('unauthorized');
    expect((denied as Error).message).toContain('needs verb "get" on resource "secrets"');
  });

  it('end to end: the refresher copies the user token into another Secret, and turns unhealthy when it is gone', async () => {
    const token = await jwt(Math.floor(clock.now() / 1000) + 25 * 60);
    platformWrites(token);
    const copy = createKubernetesSecretSink({ namespace: 'tools', name: 'alice-api-token', key: 'token' }, { kubernetes: kube, clock, logger, binding: 'alice-external' });
    const refresher = new SourceRefresher({ binding: 'alice-external', source: source(), sinks: [copy], clock, logger });
    expect(await refresher.refresh()).toBe(true);
    expect(k8s.secretValue('tools', 'alice-api-token', 'token')).toBe(token);
    expect(refresher.state.healthy).toBe(true);

    k8s.remove('secrets', USER_NS, 'access-token');
    clock.set(refresher.state.nextAttemptAt);
    expect(await refresher.refresh()).toBe(false);
    expect(refresher.state.healthy).toBe(false);
    expect(refresher.state.lastError).toContain('may have been offboarded');
    // The last good token stays where it was delivered until it expires.
    expect(k8s.secretValue('tools', 'alice-api-token', 'token')).toBe(token);
  });
});
