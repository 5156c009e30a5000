import { readFileSync, writeFileSync } from 'node:fs';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { createKubernetesSecretSink } from '../src/delivery/sinks/secret-sink.js';
import { KubernetesConfigError, kubeClients, loadKubeConfig } from '../src/kubernetes/client.js';
import { KubernetesError } from '../src/kubernetes/errors.js';
import { mintToken } from '../src/token/format.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret } from './support/output.js';

let k8s: KubernetesEmulator;
let other: KubernetesEmulator;
const clock = new ManualClock();
const savedEnv = { ...process.env };

beforeAll(async () => {
  [k8s, other] = await Promise.all([startKubernetesEmulator({ namespaces: ['default', 'tokenwarden'] }), startKubernetesEmulator()]);
});

afterAll(async () => {
  await Promise.all([k8s.stop(), other.stop()]);
});

afterEach(() => {
  for (const k of ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT', 'KUBECONFIG']) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});

describe('Kubernetes client configuration', () => {
  it('in-cluster: the service account token, CA and namespace of the pod, over verified TLS', async () => {
    const { pathPrefix, env } = k8s.writeServiceAccount('tokenwarden');
    Object.assign(process.env, env);
    const kube = kubeClients(loadKubeConfig({ mode: 'in-cluster', pathPrefix }));
    expect(kube.defaultNamespace).toBe('tokenwarden');
    const token = rememberSecret(mintToken().plaintext);
    const sink = createKubernetesSecretSink({ namespace: kube.defaultNamespace, name: 'self', key: 'token' }, { kubernetes: kube, clock });
    expect(await sink.write(token)).toEqual({ changed: true });
    expect(k8s.secretValue('tokenwarden', 'self', 'token')).toBe(token);
  });

  it('in-cluster outside a pod says what to do instead', () => {
    delete process.env.KUBERNETES_SERVICE_HOST;
    expect(() => loadKubeConfig({ mode: 'in-cluster' })).toThrow(KubernetesConfigError);
    expect(() => loadKubeConfig({ mode: 'in-cluster' })).toThrow(/set only inside a pod; outside a cluster set kubernetes.kubeconfig/);
  });

  it('auto follows $KUBECONFIG like kubectl; a named context must exist; a missing file is named', async () => {
    const path = k8s.writeKubeconfig({ namespace: 'tokenwarden' });
    process.env.KUBECONFIG = path;
    const kube = kubeClients(loadKubeConfig({ mode: 'auto' }));
    expect(kube.defaultNamespace).toBe('tokenwarden');
    expect(kube.config.getCurrentCluster()?.server).toBe(k8s.url);
    expect(() => loadKubeConfig({ mode: 'kubeconfig', path, context: 'prod' })).toThrow('kubeconfig has no context "prod" (it has: emulator)');
    expect(() => loadKubeConfig({ mode: 'kubeconfig', path: '/nonexistent/kubeconfig' })).toThrow('kubeconfig /nonexistent/kubeconfig does not exist');
  });

  it('a server certificate the kubeconfig CA did not sign is refused', async () => {
    const path = k8s.writeKubeconfig();
    const wrongCa = Buffer.from(other.caPem!).toString('base64');
    writeFileSync(path, readFileSync(path, 'utf8').replace(/certificate-authority-data: \S+/, `certificate-authority-data: ${wrongCa}`));
    const sink = createKubernetesSecretSink({ namespace: 'default', name: 'x', key: 'token' }, { kubernetes: loadKubeConfig({ mode: 'kubeconfig', path }), clock });
    const err = await sink.read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubernetesError);
    expect((err as KubernetesError).failure).toBe('unavailable');
    expect((err as Error).message).toMatch(/certificate|self.signed|SELF_SIGNED|UNABLE_TO_VERIFY/i);
    expect(k8s.requestsMatching({ name: 'x' })).toEqual([]);
  });
});

describe('the emulator speaks enough of the API for the client', () => {
  it('lists by label selector and applies merge and JSON patches with resourceVersion rules', async () => {
    const kube = kubeClients(loadKubeConfig({ mode: 'kubeconfig', path: k8s.writeKubeconfig() }));
    const labels = { 'app.kubernetes.io/managed-by': 'tokenwarden' };
    await kube.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'a', labels }, stringData: { k: 'v' } } });
    await kube.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'b' }, data: { k: Buffer.from('w').toString('base64') } } });
    const listed = await kube.core.listNamespacedSecret({ namespace: 'default', labelSelector: 'app.kubernetes.io/managed-by=tokenwarden' });
    expect(listed.items.map((s) => s.metadata?.name)).toEqual(['a']);
    expect((await kube.core.listNamespacedSecret({ namespace: 'default', labelSelector: '!app.kubernetes.io/managed-by' })).items.map((s) => s.metadata?.name)).toEqual(['b']);

    const merged = await kube.core.patchNamespacedSecret(
      { name: 'a', namespace: 'default', body: { metadata: { labels: { extra: 'yes', 'app.kubernetes.io/managed-by': null } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(merged.metadata?.labels).toEqual({ extra: 'yes' });
    const patched = await kube.core.patchNamespacedSecret({ name: 'b', namespace: 'default', body: [{ op: 'add', path: '/data/k2', value: Buffer.from('z').toString('base64') }] });
    expect(Object.keys(patched.data ?? {})).toEqual(['k', 'k2']);

    const stale = { ...patched, metadata: { ...patched.metadata, resourceVersion: '1' } };
    const conflict = await kube.core.replaceNamespacedSecret({ name: 'b', namespace: 'default', body: stale }).catch((e: { code?: number }) => e);
    expect((conflict as { code?: number }).code).toBe(409);
    const dup = await kube.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'b' } } }).catch((e: { code?: number }) => e);
    expect((dup as { code?: number }).code).toBe(409);
    expect(JSON.parse((dup as { body: string }).body)).toMatchObject({ kind: 'Status', reason: 'AlreadyExists', code: 409 });
  });
});
