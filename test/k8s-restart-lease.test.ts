import { beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { KubernetesLease } from '../src/delivery/leader/kubernetes-lease.js';
import { RestartError, type RestartTarget, restartWorkloads } from '../src/delivery/sinks/restart.js';
import { LostLeadership } from '../src/delivery/rotation/rotation.js';
import { createKubernetesSecretSink } from '../src/delivery/sinks/secret-sink.js';
import type { KubeClients } from '../src/kubernetes/client.js';
import { KubernetesError } from '../src/kubernetes/errors.js';
import { tokenRef } from '../src/kubernetes/metadata.js';
import type { Store } from '../src/store/store.js';
import { mintToken } from '../src/token/format.js';
import { type KubernetesEmulator, useKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret } from './support/output.js';

const NS = 'monitoring';
let k8s: KubernetesEmulator;
let kube: KubeClients;
const clock = new ManualClock(Date.UTC(2026, 2, 1, 12, 0, 0));
const { logger } = useKubernetesEmulator({ namespaces: ['default', NS], logName: 'k8s-restart-lease', kubeconfigNamespace: NS }, (cluster) => ({ k8s, kube } = cluster));

const workload = (kind: string, name: string) => ({
  apiVersion: 'apps/v1',
  kind,
  metadata: { name, namespace: NS },
  spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: 'prom/prometheus' }] } } },
});
const targets: RestartTarget[] = [
  { kind: 'Deployment', namespace: NS, name: 'prometheus' },
  { kind: 'StatefulSet', namespace: NS, name: 'alertmanager' },
];
const restartedAt = (resource: string, name: string) => k8s.get(resource, NS, name)!.spec.template.metadata.annotations?.['kubectl.kubernetes.io/restartedAt'];

beforeAll(() => {
  k8s.seed('deployments', workload('Deployment', 'prometheus'));
  k8s.seed('statefulsets', workload('StatefulSet', 'alertmanager'));
});

describe('rollout restart', () => {
  it('patches restartedAt on the pod template like kubectl rollout restart, once per token change', async () => {
    const sink = createKubernetesSecretSink({ namespace: NS, name: 'prom-token', key: 'token' }, { kubernetes: kube, clock, logger });
    const deps = { kubernetes: kube, clock, logger };
    // What the delivery step does: write, then restart for the token just written.
    const deliver = async (token: string) => {
      const { changed } = await sink.write(token);
      if (changed) return restartWorkloads(targets, deps, { revision: tokenRef(token) });
      return [];
    };

    const a = rememberSecret(mintToken().plaintext);
    const generation = k8s.get('deployments', NS, 'prometheus')!.metadata.generation;
    const first = await deliver(a);
    expect(first.map((o) => o.restarted)).toEqual([true, true]);
    expect(restartedAt('deployments', 'prometheus')).toBe('2026-03-01T12:00:00Z');
    expect(restartedAt('statefulsets', 'alertmanager')).toBe('2026-03-01T12:00:00Z');
    expect(k8s.get('deployments', NS, 'prometheus')!.metadata.generation).toBe(generation + 1);
    const patches = k8s.writes({ verbs: ['patch'] });
    expect(patches.map((p) => `${p.resource}/${p.name} ${p.contentType}`)).toEqual([
      'deployments/prometheus application/strategic-merge-patch+json',
      'statefulsets/alertmanager application/strategic-merge-patch+json',
    ]);
    expect(patches[0]!.patch).toEqual({
      spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-03-01T12:00:00Z', 'tokenwarden.dev/restarted-for': tokenRef(a) } } } },
    });
    // The pod template keeps what it had.
    expect(k8s.get('deployments', NS, 'prometheus')!.spec.template.metadata.labels).toEqual({ app: 'prometheus' });

    // Same token again (a retry, a restart of tokenwarden): no Secret write, no restart.
    clock.advance(60_000);
    k8s.clearLog();
    expect(await deliver(a)).toEqual([]);
    expect(k8s.writes()).toEqual([]);

    // Crash between "Secret written" and "restart": the resumed step restarts once, not twice.
    const b = rememberSecret(mintToken().plaintext);
    await sink.write(b);
    k8s.clearLog();
    const resumed = await restartWorkloads(targets, deps, { revision: tokenRef(b) });
    const again = await restartWorkloads(targets, deps, { revision: tokenRef(b) });
    expect(resumed.map((o) => o.restarted)).toEqual([true, true]);
    expect(again.map((o) => o.restarted)).toEqual([false, false]);
    expect(k8s.writes({ verbs: ['patch'] })).toHaveLength(2);
    expect(restartedAt('deployments', 'prometheus')).toBe('2026-03-01T12:01:00Z');
  });

  it('reports a missing workload and a missing RBAC permission by name, after trying every target', async () => {
    k8s.forbid({ resource: 'statefulsets', verbs: ['patch'] });
    const err = await restartWorkloads([{ kind: 'Deployment', namespace: NS, name: 'gone' }, ...targets], { kubernetes: kube, clock }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestartError);
    const failures = (err as RestartError).failures;
    expect(failures.map((f) => `${f.target.name}:${f.error.failure}`)).toEqual(['gone:not-found', 'alertmanager:forbidden']);
    expect((err as Error).message).toContain('deployments "monitoring/gone" does not exist');
    expect((err as Error).message).toContain('needs verb "patch" on resource "statefulsets" (apiGroups ["apps"]) in namespace "monitoring"');
    // The Deployment that could be restarted was.
    expect(k8s.writes({ verbs: ['patch'] }).filter((w) => w.status === 200).map((w) => w.name)).toEqual(['prometheus']);
  });
});

describe('Kubernetes Lease leader election', () => {
  const fakeTx = {} as Store;
  const leaseClock = new ManualClock(Date.UTC(2026, 5, 1, 8, 0, 0));
  const elector = (identity: string, extra: { name?: string } = {}) =>
    new KubernetesLease({ identity, name: extra.name ?? 'controller', leaseDurationSeconds: 10 }, { kubernetes: kube, clock: leaseClock, logger });

  it('one holder at a time; renewals keep it; takeover only after the lease went stale by the candidate clock', async () => {
    const a = elector('pod-a');
    const b = elector('pod-b');
    expect(await a.acquire()).toBe(true);
    expect(a.fencingToken).toBe(1);
    // The Lease lives in the namespace of the kubeconfig context.
    const lease = k8s.get('leases', NS, 'controller')!;
    expect(lease.spec).toMatchObject({ holderIdentity: 'pod-a', leaseDurationSeconds: 10, leaseTransitions: 0 });
    expect(lease.spec.renewTime).toBe('2026-06-01T08:00:00.000000Z');

    expect(await b.acquire()).toBe(false);
    for (let i = 0; i < 3; i++) {
      leaseClock.advance(6_000); // longer than half the duration, but a renews every time
      expect(await a.acquire()).toBe(true);
      expect(await b.acquire()).toBe(false);
    }
    await a.fence(fakeTx);
    expect(k8s.get('leases', NS, 'controller')!.spec.leaseTransitions).toBe(0);

    // a stops renewing (it died). b saw the last change now; it must wait a whole duration.
    leaseClock.advance(9_000);
    expect(await b.acquire()).toBe(false);
    leaseClock.advance(1_000);
    expect(await b.acquire()).toBe(true);
    expect(b.fencingToken).toBe(2);
    expect(k8s.get('leases', NS, 'controller')!.spec).toMatchObject({ holderIdentity: 'pod-b', leaseTransitions: 1 });

    // The old leader wakes up: it may not act, and it does not get the lease back.
    await expect(a.fence(fakeTx)).rejects.toBeInstanceOf(LostLeadership);
    expect(await a.acquire()).toBe(false);
    expect(a.leading).toBe(false);
  });

  it('of two candidates racing for one version of the record, the one that gets 409 has lost', async () => {
    const a = elector('pod-a', { name: 'race' });
    const b = elector('pod-b', { name: 'race' });
    expect(await a.acquire()).toBe(true);
    await a.release();
    expect(k8s.get('leases', NS, 'race')!.spec.holderIdentity).toBe('');

    // b reads the released lease, but a writes first (just before b's write lands).
    k8s.clearLog();
    k8s.beforeNextWrite(() => k8s.touch('leases', NS, 'race', (o) => (o.spec.holderIdentity = 'pod-a')));
    expect(await b.acquire()).toBe(false);
    expect(k8s.requests.map((r) => `${r.verb}:${r.status}`)).toEqual(['get:200', 'update:409']);
    expect(b.leading).toBe(false);
  });

  it('a released lease is taken at once, without waiting for it to expire', async () => {
    const a = elector('pod-a', { name: 'handover' });
    const b = elector('pod-b', { name: 'handover' });
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    await a.release();
    expect(a.leading).toBe(false);
    expect(await b.acquire()).toBe(true);
    expect(b.fencingToken).toBe(2);
    expect(k8s.get('leases', NS, 'handover')!.spec).toMatchObject({ holderIdentity: 'pod-b', leaseTransitions: 1, leaseDurationSeconds: 10 });
  });

  it('a missing RBAC permission on leases is an error, not a silent standby', async () => {
    k8s.forbid({ resource: 'leases' });
    const err = await elector('pod-a', { name: 'denied' }).acquire().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubernetesError);
    expect((err as Error).message).toContain('needs verb "get" on resource "leases" (apiGroups ["coordination.k8s.io"])');
    k8s.allow();
    // A server error is a blip: not leading this round, no exception.
    k8s.failNext(1, { resource: 'leases', status: 500 });
    expect(await elector('pod-a', { name: 'denied' }).acquire()).toBe(false);
  });
});
