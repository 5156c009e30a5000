import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/server-config.js';
import { tempDir } from './support/output.js';

/**
 * The manifests cannot be applied here (no API server), so they are parsed, validated against
 * the Kubernetes OpenAPI schemas shipped in kubernetes-models (and prometheus-operator's CRD
 * schemas), and checked for the properties that matter: probes, non-root, read-only root
 * filesystem, least-privilege RBAC, and a ServiceMonitor whose Secret a binding really delivers.
 */
const BASE = resolve('deploy/kubernetes');
type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

function validate(obj: K8sObject): void {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj).validate();
}

function readDocs(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS() as K8sObject;
  });
}

/** A small kustomize: resources (files and directories), strategic-merge patches by name, JSON 6902 replace/add, and $patch: delete. */
function build(dir: string): K8sObject[] {
  const k = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'));
  let objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dir, r);
    objects.push(...(r.endsWith('.yaml') ? readDocs(path) : build(path)));
  }
  for (const p of k.patches ?? []) {
    if (p.path) {
      for (const patch of readDocs(join(dir, p.path))) {
        const target = objects.find((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name);
        if (!target) throw new Error(`patch ${p.path} matches nothing`);
        strategicMerge(target, patch);
      }
      continue;
    }
    const matches = objects.filter((o) => o.kind === p.target.kind && o.metadata.name === p.target.name);
    expect(matches, `patch target ${p.target.kind}/${p.target.name}`).toHaveLength(1);
    const body = parseYaml(p.patch);
    if (Array.isArray(body)) for (const op of body) json6902(matches[0], op);
    else if (body.$patch === 'delete') objects = objects.filter((o) => o !== matches[0]);
    else strategicMerge(matches[0], body);
  }
  for (const image of k.images ?? []) {
    for (const o of objects) {
      for (const c of o.spec?.template?.spec?.containers ?? []) if (c.image === image.name) c.image = `${image.newName ?? image.name}:${image.newTag}`;
    }
  }
  return objects;
}

function strategicMerge(target: any, patch: any): void {
  for (const [key, value] of Object.entries(patch)) {
    if (Array.isArray(value) && Array.isArray(target[key]) && value.every((v: any) => v && typeof v === 'object' && 'name' in v)) {
      for (const item of value as any[]) {
        const existing = target[key].find((t: any) => t.name === item.name);
        if (existing) strategicMerge(existing, item);
        else target[key].push(item);
      }
    } else if (value && typeof value === 'object' && !Array.isArray(value) && target[key] && typeof target[key] === 'object') {
      strategicMerge(target[key], value);
    } else {
      target[key] = value;
    }
  }
}

function json6902(target: any, op: { op: string; path: string; value: unknown }): void {
  const parts = op.path.split('/').slice(1);
  const last = parts.pop()!;
  const parent = parts.reduce((o, p) => {
    if (o[p] === undefined) throw new Error(`JSON patch path ${op.path} does not exist`);
    return o[p];
  }, target);
  if (op.op === 'replace' && parent[last] === undefined) throw new Error(`JSON patch replaces missing ${op.path}`);
  if (op.op !== 'replace' && op.op !== 'add') throw new Error(`unsupported op ${op.op}`);
  parent[last] = op.value;
}

const base = build(BASE);
const one = (objects: K8sObject[], kind: string, name?: string) => {
  const found = objects.filter((o) => o.kind === kind && (!name || o.metadata.name === name));
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0];
};
const deployment = one(base, 'Deployment');
const pod = deployment.spec.template.spec;
const container = pod.containers[0];
const configMap = one(base, 'ConfigMap', 'tokenwarden-config');
// the ConfigMap's config.yaml is a real tokenwarden configuration: load it the way serve does
const configFile = join(tempDir('deploy'), 'config.yaml');
writeFileSync(configFile, configMap.data['config.yaml']);
const config = loadConfig({ file: configFile, env: {} });

describe('Kubernetes manifests (kustomize base)', () => {
  it('every object validates against its Kubernetes schema', () => {
    expect(base.map((o) => o.kind).sort()).toEqual(
      ['ConfigMap', 'Deployment', 'Namespace', 'PersistentVolumeClaim', 'PrometheusRule', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'Service', 'ServiceAccount', 'ServiceMonitor'].sort(),
    );
    for (const o of base) expect(() => validate(o), `${o.kind}/${o.metadata.name}`).not.toThrow();
  });

  it('the validator does refuse a broken object (so the check above means something)', () => {
    const broken = structuredClone(deployment);
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
    expect(() => validate(broken)).toThrow(/containerPort must be integer/);
    const noSelector = structuredClone(deployment);
    delete noSelector.spec.selector;
    expect(() => validate(noSelector)).toThrow(/selector/);
  });

  it('probes: liveness /healthz, readiness /readyz, on the named port the container exposes', () => {
    expect(container.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
    // One address for users: /auth is answered on the main port by the front threads.
    expect(container.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    expect(config.listen).toMatchObject({ host: '0.0.0.0', port: 8080 });
    expect(config.authListen).toBeUndefined();
    expect(config.verify).toMatchObject({ threads: 'auto' });
    const env = Object.fromEntries(container.env.filter((e: any) => 'value' in e).map((e: any) => [e.name, e.value]));
    expect(env.TOKENWARDEN_LISTEN_PORT).toBe('8080');
    expect(env.TOKENWARDEN_LISTEN_HOST).toBe('0.0.0.0');
  });

  it('runs as non-root on a read-only root filesystem, with every writable path on a volume', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const mounts = Object.fromEntries(container.volumeMounts.map((m: any) => [m.mountPath, m.name]));
    const volumes = new Set(pod.volumes.map((v: any) => v.name));
    for (const name of Object.values(mounts)) expect(volumes.has(name)).toBe(true);
    // where tokenwarden writes: the store (SQLite file, delivery key), the first admin token, /tmp
    expect(dirname(config.store.url)).toBe('/var/lib/tokenwarden');
    expect(mounts['/var/lib/tokenwarden']).toBe('data');
    expect(mounts['/tmp']).toBe('tmp');
    const bootstrapFile = container.env.find((e: any) => e.name === 'TOKENWARDEN_BOOTSTRAP_TOKEN_FILE').value;
    expect(dirname(bootstrapFile)).toBe('/var/lib/tokenwarden');
    // the config file named in args is the ConfigMap's key, mounted read-only
    const configPath = container.args[container.args.indexOf('--config') + 1];
    expect(mounts[dirname(configPath)]).toBe('config');
    expect(container.volumeMounts.find((m: any) => m.name === 'config').readOnly).toBe(true);
    expect(pod.volumes.find((v: any) => v.name === 'config').configMap.name).toBe(configMap.metadata.name);
    expect(Object.keys(configMap.data)).toContain(configPath.split('/').pop());
    expect(pod.volumes.find((v: any) => v.name === 'data').persistentVolumeClaim.claimName).toBe(one(base, 'PersistentVolumeClaim').metadata.name);
    // SQLite has one writer
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy.type).toBe('Recreate');
  });

  it('the Service selects the pods and serves the named port', () => {
    const svc = one(base, 'Service');
    expect(deployment.spec.selector.matchLabels).toEqual(svc.spec.selector);
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(deployment.spec.template.metadata.labels[k]).toBe(v);
    expect(svc.spec.ports[0]).toMatchObject({ name: 'http', targetPort: 'http' });
    expect(svc.spec.ports).toHaveLength(1);
    expect(container.image).toBe('tokenwarden:0.1.0');
  });

  it('RBAC: only Secrets (named) and Leases, only the verbs the code calls, bound to the service account', () => {
    const sa = one(base, 'ServiceAccount');
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    const roles = base.filter((o) => o.kind === 'Role');
    for (const role of roles) {
      for (const rule of role.rules) {
        expect(rule.apiGroups.length).toBe(1);
        const [group, resources] = [rule.apiGroups[0], rule.resources];
        expect(resources.length).toBe(1);
        expect([`${group}/${resources[0]}`]).toSatisfy(([r]: string[]) => r === '/secrets' || r === 'coordination.k8s.io/leases');
        expect(rule.verbs.every((v: string) => ['create', 'get', 'update', 'delete'].includes(v)), `${role.metadata.name}: ${rule.verbs}`).toBe(true);
        // Kubernetes cannot restrict create by name; every other verb is limited to named objects
        if (!(rule.verbs.length === 1 && rule.verbs[0] === 'create')) expect(rule.resourceNames?.length, JSON.stringify(rule)).toBeGreaterThan(0);
      }
    }
    for (const rb of base.filter((o) => o.kind === 'RoleBinding')) {
      const role = roles.find((r) => r.metadata.name === rb.roleRef.name && r.metadata.namespace === rb.metadata.namespace);
      expect(role, `RoleBinding ${rb.metadata.name} refers to a Role in its namespace`).toBeDefined();
      expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    }
    expect(base.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toBe(false);
  });

  it('the leader Lease the code uses is the one RBAC names', () => {
    const leaseRule = base
      .filter((o) => o.kind === 'Role' && o.metadata.namespace === deployment.metadata.namespace)
      .flatMap((r) => r.rules)
      .find((r: any) => r.resources[0] === 'leases' && r.resourceNames);
    const code = readFileSync('src/delivery/leader/kubernetes-lease.ts', 'utf8');
    const defaultName = /options\.name \?\? '([^']+)'/.exec(code)?.[1] ?? /Default "([^"]+)"/.exec(code)?.[1];
    expect(leaseRule.resourceNames).toEqual([defaultName]);
    expect(leaseRule.verbs.sort()).toEqual(['get', 'update']);
  });

  it('every Secret a binding delivers is named in a Role of its namespace, and nothing else is', () => {
    const sinks = config.bindings.flatMap((b) => b.sinks).filter((s) => s.kind === 'kubernetes-secret') as { namespace: string; name: string; key: string }[];
    expect(sinks.length).toBeGreaterThan(0);
    const granted = base
      .filter((o) => o.kind === 'Role')
      .flatMap((r) => r.rules.filter((x: any) => x.resources[0] === 'secrets' && x.resourceNames).flatMap((x: any) => x.resourceNames.map((n: string) => `${r.metadata.namespace}/${n}`)));
    expect(granted.sort()).toEqual(sinks.map((s) => `${s.namespace}/${s.name}`).sort());
    // and each such namespace has the create rule and a binding to the service account
    for (const ns of new Set(sinks.map((s) => s.namespace))) {
      const role = base.find((o) => o.kind === 'Role' && o.metadata.namespace === ns)!;
      expect(role.rules.some((r: any) => r.resources[0] === 'secrets' && r.verbs.includes('create'))).toBe(true);
      expect(base.some((o) => o.kind === 'RoleBinding' && o.metadata.namespace === ns && o.roleRef.name === role.metadata.name)).toBe(true);
    }
  });

  it('the ServiceMonitor scrapes /metrics with bearerTokenSecret, a Secret a binding keeps fresh with metrics.read', () => {
    const sm = one(base, 'ServiceMonitor');
    const svc = one(base, 'Service');
    expect(sm.metadata.namespace).toBe(svc.metadata.namespace);
    expect(sm.spec.selector.matchLabels).toEqual(svc.spec.selector);
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels![k]).toBe(v);
    const [endpoint] = sm.spec.endpoints;
    expect(endpoint).toMatchObject({ port: svc.spec.ports[0].name, path: '/metrics' });
    expect(endpoint.bearerTokenFile).toBeUndefined();
    const secret = endpoint.bearerTokenSecret;
    expect(secret).toEqual({ name: 'tokenwarden-metrics-token', key: 'token' });
    // the operator reads the Secret from the ServiceMonitor's namespace
    const delivering = config.bindings.find((b) =>
      b.sinks.some((s) => s.kind === 'kubernetes-secret' && s.namespace === sm.metadata.namespace && s.name === secret.name && s.key === secret.key),
    );
    expect(delivering, 'a binding delivers the ServiceMonitor Secret').toBeDefined();
    expect(delivering!.scopes).toEqual(['metrics.read']);
  });

  it('includes the PrometheusRule written from the shipped alert rules', () => {
    const rule = one(base, 'PrometheusRule');
    expect(rule.spec.groups.length).toBeGreaterThan(0);
    expect(rule.spec.groups.flatMap((g: any) => g.rules).every((r: any) => r.alert && r.expr)).toBe(true);
  });
});

describe('Kubernetes manifests (overlays/postgres)', () => {
  const overlay = build(join(BASE, 'overlays', 'postgres'));
  const d = one(overlay, 'Deployment');
  const c = d.spec.template.spec.containers[0];

  it('validates, runs three replicas rolling on PostgreSQL, and drops the SQLite volume claim', () => {
    for (const o of overlay) expect(() => validate(o), `${o.kind}/${o.metadata.name}`).not.toThrow();
    expect(overlay.some((o) => o.kind === 'PersistentVolumeClaim')).toBe(false);
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    expect(d.spec.template.spec.volumes.find((v: any) => v.name === 'data')).toEqual({ name: 'data', emptyDir: { sizeLimit: '64Mi' } });
    const pdb = one(overlay, 'PodDisruptionBudget');
    expect(pdb.spec.minAvailable).toBeLessThan(d.spec.replicas);
    expect(pdb.spec.selector.matchLabels).toEqual(d.spec.selector.matchLabels);
  });

  it('reads the store URL and the shared delivery key from Secrets, keeping the base hardening', () => {
    const env = Object.fromEntries(c.env.map((e: any) => [e.name, e]));
    expect(env.TOKENWARDEN_STORE_URL.valueFrom.secretKeyRef).toEqual({ name: 'tokenwarden-postgres', key: 'url' });
    expect(env.TOKENWARDEN_LISTEN_PORT.value).toBe('8080'); // base env kept by the merge
    const keyFile = env.TOKENWARDEN_DELIVERY_KEY_FILE.value as string;
    const mount = c.volumeMounts.find((m: any) => keyFile.startsWith(`${m.mountPath}/`));
    expect(mount).toMatchObject({ name: 'delivery-key', readOnly: true });
    expect(d.spec.template.spec.volumes.find((v: any) => v.name === 'delivery-key').secret.secretName).toBe('tokenwarden-delivery-key');
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    // no mount nests inside another (a read-only ConfigMap volume cannot host a mount point)
    const paths = c.volumeMounts.map((m: any) => m.mountPath as string);
    for (const a of paths) for (const b of paths) if (a !== b) expect(b.startsWith(`${a}/`), `${b} inside ${a}`).toBe(false);
  });
});
