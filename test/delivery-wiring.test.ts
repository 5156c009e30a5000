import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/server-config.js';
import { type RotationDeps, Rotator } from '../src/delivery/rotation/rotation.js';
import type { BindingRecord } from '../src/delivery/bindings/spec.js';
import { LazyKube, kubeAccess } from '../src/kubernetes/lazy.js';
import { DEFAULT_REFRESH_POLICY, retryDelay } from '../src/delivery/refresh/refresh-schedule.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { tempDir } from './support/output.js';

/** The small rules of the wiring between delivery, sources and Kubernetes (the end-to-end run is test/k8s-delivery.test.ts). */

const problemsOf = (overrides: Record<string, unknown>): string[] => {
  try {
    loadConfig({ env: {}, overrides: overrides as Record<string, Record<string, unknown>> });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  }
};

describe('configuration', () => {
  it('takes a kubernetes: section and delivery.leader, and refuses what contradicts itself, naming the field', () => {
    const ok = loadConfig({ env: {}, overrides: { kubernetes: { kubeconfig: '/etc/tw/kubeconfig', context: 'prod' } } });
    expect(ok.kubernetes).toEqual({ kubeconfig: '/etc/tw/kubeconfig', context: 'prod' });
    expect(ok.delivery.leader).toBe('store');
    expect(loadConfig({ env: { TOKENWARDEN_DELIVERY_LEADER: 'kubernetes' } }).delivery.leader).toBe('kubernetes');

    expect(problemsOf({ kubernetes: { inCluster: true, kubeconfig: '/x' } })).toEqual(['kubernetes.inCluster and kubernetes.kubeconfig exclude each other: choose one']);
    expect(problemsOf({ kubernetes: { lease: { name: 'tw' } } })).toEqual([
      'kubernetes.lease: set delivery.leader: kubernetes to elect the leader with this Lease (or remove kubernetes.lease)',
    ]);
    expect(problemsOf({ delivery: { leader: 'etcd' } })).toEqual(['delivery.leader: "etcd" is not valid; use one of "store", "kubernetes"']);
    expect(problemsOf({ kubernetes: { kubeconfg: '/x' } })[0]).toMatch(/^kubernetes\.kubeconfg: is not a known setting/);
  });

  it('a binding needs actor, scopes and lifetime only when it mints (no source:)', () => {
    const sinks = [{ kind: 'file', path: '/tmp/x.token' }];
    const dir = tempDir('wiring-config');
    const file = join(dir, 'tokenwarden.yaml');
    writeFileSync(file, JSON.stringify({ bindings: [{ name: 'up', source: { kind: 'kubernetes-secret', name: 'access-token' }, sinks }, { name: 'minted', scopes: ['a'], sinks }] }));
    let problems: string[] = [];
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      problems = (err as ConfigError).problems;
    }
    expect(problems).toEqual([
      'bindings[1].actor: actor is required for a binding that mints its token (one without source:)',
      'bindings[1].lifetime: lifetime is required for a binding that mints its token (one without source:)',
    ]);
  });
});

describe('retry of a failing source binding', () => {
  // Only the backoff knobs are used by retryDelay.
  const rotator = new Rotator({ retryBaseMs: 1000, retryMaxMs: 300_000, random: () => 0.5 } as unknown as RotationDeps);
  const record = (source: boolean, tokenExpiresAt: number | null) =>
    ({ spec: source ? { source: { kind: 'http-login' } } : {}, row: { token_expires_at: tokenExpiresAt } }) as unknown as BindingRecord;
  const now = 1_000_000;

  it('comes at the latest at half of what the last good token has left, as the agent refresher does', () => {
    // One backoff (delivery/schedule.ts): jitter only shortens a delay, by up to 20 % (random 0.5: 10 %).
    expect(rotator.backoff(10)).toBe(270_000);
    expect(rotator.retryDelay(record(true, now + 60_000), 10, now)).toBe(30_000);
    expect(retryDelay(20, DEFAULT_REFRESH_POLICY, 60_000, () => 1)).toBe(30_000); // the agent's rule, same numbers
    expect(rotator.retryDelay(record(true, now + 100), 10, now)).toBe(100); // never a hot loop
    // A minted binding with time left (tokenwarden can always mint again): plain backoff.
    expect(rotator.retryDelay(record(false, now + 60_000), 10, now)).toBe(270_000);
    // A dead token is urgent: at most delivery.urgentRetry (10 s), jittered the same way, so a returning upstream is used within seconds.
    expect(rotator.retryDelay(record(true, now - 1), 10, now)).toBe(9_000);
    expect(retryDelay(20, DEFAULT_REFRESH_POLICY, -1, () => 0.5)).toBe(9_000);
  });

  it('is urgent in the last tenth of the token\'s life, not before', () => {
    const minted = (expiresAt: number) => ({ spec: {}, lifetimeMs: 100_000, row: { token_expires_at: expiresAt } }) as unknown as BindingRecord;
    expect(rotator.retryDelay(minted(now + 9_000), 10, now)).toBe(9_000);
    expect(rotator.retryDelay(minted(now + 11_000), 10, now)).toBe(270_000);
  });
});

describe('the lazy cluster connection', () => {
  let k8s: KubernetesEmulator;
  beforeAll(async () => {
    k8s = await startKubernetesEmulator();
  });
  afterAll(async () => k8s?.stop());

  it('connects on first use only, and tries again after a failure (a kubeconfig mounted late)', async () => {
    const dir = tempDir('wiring-lazy');
    const path = join(dir, 'kubeconfig.yaml');
    const lazy = new LazyKube({ kubeconfig: path });
    expect(lazy.loaded).toBe(false);
    await expect(kubeAccess(lazy)).rejects.toThrow(`kubeconfig ${path} does not exist`);
    k8s.writeKubeconfig({ dir });
    const clients = (await kubeAccess(lazy)) as { core: { listNamespacedSecret(a: { namespace: string }): Promise<{ items: unknown[] }> } };
    expect(lazy.loaded).toBe(true);
    expect((await clients.core.listNamespacedSecret({ namespace: 'default' })).items).toEqual([]);
    expect(await kubeAccess(lazy)).toBe(clients);
    expect(() => new LazyKube({ inCluster: true, kubeconfig: path })).toThrow('exclude each other');
  });
});
