import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { tempDir } from './support/output.js';

/**
 * Issue 15, point 8: Kubernetes errors a person can act on. `tokenwarden config check` (the built
 * CLI; `npm run build` first) says when no cluster is configured at all, and with --online asks the
 * API (the emulator) whether RBAC allows each Secret sink's verbs.
 */
let k8s: KubernetesEmulator;
let dir: string;
let emptyHome = "";

beforeAll(async () => {
  k8s = await startKubernetesEmulator({ namespaces: ['default', 'monitoring'] });
  dir = tempDir('k8s-config-check');
  emptyHome = join(dir, 'home');
  mkdirSync(emptyHome);
});
afterAll(async () => k8s?.stop());

function configWith(extra: string): string {
  const file = join(dir, `tw-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    [
      `store: { url: ${join(dir, 'tw.db')} }`,
      'bindings:',
      '  - { name: scrape, actor: bot-prom, scopes: [metrics.read], lifetime: 1d, sinks: [{ kind: kubernetes-secret, namespace: monitoring, name: prom-token }] }',
      extra,
      '',
    ].join('\n'),
  );
  return file;
}
// No pod, no KUBECONFIG, an empty home: nothing tells where a cluster is.
const bare = () => ({ HOME: emptyHome, KUBECONFIG: undefined, KUBERNETES_SERVICE_HOST: undefined });

describe('config check and Kubernetes', () => {
  it('with a Secret sink and no cluster configured, says exactly that and how to point at one, instead of "valid"', async () => {
    const res = await runCli(['config', 'check', '-c', configWith('')], bare());
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('kubernetes: no Kubernetes cluster is configured: this is not a pod with a service account (KUBERNETES_SERVICE_HOST is not set), KUBECONFIG is not set');
    expect(res.stderr).toContain(`and ${join(emptyHome, '.kube', 'config')} does not exist. Point tokenwarden at a cluster with kubernetes.kubeconfig`);
    expect(res.stderr).not.toMatch(/skipTLSVerify|configuration is valid/);
  });

  it('a KUBECONFIG that names no file is said as such', async () => {
    const res = await runCli(['config', 'check', '-c', configWith('')], { ...bare(), KUBECONFIG: join(dir, 'missing.kubeconfig') });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`KUBECONFIG=${join(dir, 'missing.kubeconfig')} names no existing file`);
  });

  it('with kubernetes.kubeconfig the plain check passes without contacting the cluster; --online asks RBAC and passes when allowed', async () => {
    const file = configWith(`kubernetes: { kubeconfig: ${k8s.writeKubeconfig()} }`);
    k8s.clearLog();
    const plain = await runCli(['config', 'check', '-c', file], bare());
    expect(plain.code, plain.stderr).toBe(0);
    expect(k8s.requestsMatching({}).length).toBe(0);
    const online = await runCli(['config', 'check', '--online', '-c', file], bare());
    expect(online.code, online.stderr).toBe(0);
    expect(online.stderr).toContain('configuration is valid');
    expect(k8s.requestsMatching({ resource: 'selfsubjectaccessreviews' }).length).toBe(5); // get, create, update, patch, delete
    expect(k8s.writes({ resource: 'secrets' })).toEqual([]);
  });

  it('--online names each verb RBAC refuses on each Secret, with the rule to add', async () => {
    const file = configWith(`kubernetes: { kubeconfig: ${k8s.writeKubeconfig()} }`);
    k8s.forbid({ resource: 'secrets', namespace: 'monitoring', verbs: ['update', 'delete'] });
    try {
      const res = await runCli(['config', 'check', '--online', '-c', file], bare());
      expect(res.code).toBe(2);
      const lines = res.stderr.split('\n').filter((l) => l.includes('RBAC'));
      expect(lines).toEqual([
        expect.stringContaining('bindings[0] "scrape" (secret monitoring/prom-token): Kubernetes RBAC does not allow tokenwarden to update secret "monitoring/prom-token": the service account needs verb "update" on resource "secrets" (apiGroups [""]) in namespace "monitoring"'),
        expect.stringContaining('to delete secret "monitoring/prom-token"'),
      ]);
    } finally {
      k8s.allow();
    }
  });

  it('--online says when the API rejects the credentials', async () => {
    const file = configWith(`kubernetes: { kubeconfig: ${k8s.writeKubeconfig({ token: 'wrong-token' })} }`);
    const res = await runCli(['config', 'check', '--online', '-c', file], bare());
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("rejected tokenwarden's credentials (401)");
  });
});
