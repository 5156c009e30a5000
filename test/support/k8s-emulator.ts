import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { type KubeClients, kubeClients, loadKubeConfig } from '../../src/kubernetes/client.js';
import { type Logger, createLogger } from '../../src/log.js';
import { LOG_DIR, rememberSecret, tempDir } from './output.js';

/**
 * A small Kubernetes API server for the tests: real HTTP on 127.0.0.1, the REST paths, verbs,
 * Status objects and resourceVersion rules the official client and tokenwarden rely on.
 * No API server can be installed on these machines, so this is the counterpart of a cluster;
 * the product code talks to it only through @kubernetes/client-node.
 *
 * Faithful where the product depends on it:
 *  - every object carries a resourceVersion from one counter; PUT (and a patch carrying
 *    metadata.resourceVersion) with a stale one answers 409 Conflict;
 *  - POST of an existing name answers 409 AlreadyExists; POST into a missing namespace answers
 *    404 `namespaces "x" not found`, while GET of a Secret there answers 404 for the Secret;
 *  - Secret `stringData` folds into base64 `data`; `?dryRun=All` validates without storing;
 *  - a bearer token is required (401 otherwise).
 * Fault hooks: forced conflicts, 403 for a namespace (RBAC), any status N times, a hook that
 * runs before the next write (a concurrent writer), and a request log (never bodies of Secrets).
 */

type Obj = Record<string, any>;
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';
const WRITE_VERBS: Verb[] = ['create', 'update', 'patch', 'delete'];

interface ResourceType {
  prefix: string;
  group: string;
  version: string;
  resource: string;
  kind: string;
}

const TYPES: ResourceType[] = [
  { prefix: '/api/v1', group: '', version: 'v1', resource: 'secrets', kind: 'Secret' },
  { prefix: '/api/v1', group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap' },
  { prefix: '/apis/apps/v1', group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment' },
  { prefix: '/apis/apps/v1', group: 'apps', version: 'v1', resource: 'statefulsets', kind: 'StatefulSet' },
  { prefix: '/apis/coordination.k8s.io/v1', group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease' },
];
const TYPE_BY_RESOURCE = new Map(TYPES.map((t) => [t.resource, t]));

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  verb: Verb;
  resource?: string;
  namespace?: string;
  name?: string;
  contentType?: string;
  status: number;
  /** The patch body, for workloads only (never for Secrets, which carry tokens). */
  patch?: unknown;
  dryRun: boolean;
}

export interface Match {
  verbs?: Verb[];
  resource?: string;
  namespace?: string;
  name?: string;
}

interface Fault extends Match {
  status: number;
  reason: string;
  times: number;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details: Obj = {},
  ) {
    super(message);
  }
}

export interface EmulatorOptions {
  /**
   * Serve HTTPS with a fresh self-signed certificate, as every API server does (default true).
   * The client refuses plain HTTP unless the kubeconfig says insecure-skip-tls-verify.
   */
  tls?: boolean;
  /** Namespaces that exist from the start (default: ["default"]). */
  namespaces?: string[];
  /** The identity named in 403 messages, as an API server would. */
  user?: string;
}

export class KubernetesEmulator {
  readonly token = rememberSecret(`k8s-emulator-${randomBytes(24).toString('hex')}`);
  readonly requests: RequestRecord[] = [];
  readonly namespaces = new Set<string>();
  url = '';
  /** PEM of the self-signed serving certificate when tls is on (the kubeconfig CA). */
  caPem: string | undefined;
  private server!: Server;
  private readonly objects = new Map<string, Obj>();
  private revision = 100;
  private faults: Fault[] = [];
  private beforeWriteHooks: ((rec: RequestRecord) => void)[] = [];
  private readonly logFile = join(LOG_DIR, `k8s-emulator-${process.pid}-${Date.now()}-${randomBytes(3).toString('hex')}.log`);
  private readonly user: string;
  private readonly tls: boolean;

  constructor(options: EmulatorOptions = {}) {
    this.tls = options.tls ?? true;
    for (const ns of options.namespaces ?? ['default']) this.namespaces.add(ns);
    this.user = options.user ?? 'system:serviceaccount:tokenwarden:tokenwarden';
  }

  async start(): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    if (this.tls) {
      const { cert, key } = selfSignedCertificate();
      this.caPem = cert;
      this.server = createHttpsServer({ cert, key }, handler);
    } else {
      this.server = createHttpServer(handler);
    }
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as { port: number };
    this.url = `${this.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Writes a kubeconfig that points at this emulator with its bearer token; returns its path. */
  writeKubeconfig(options: { dir?: string; namespace?: string; token?: string } = {}): string {
    const dir = options.dir ?? tempDir('kubeconfig');
    const path = join(dir, 'kubeconfig.yaml');
    const ca = this.caPem ? `\n    certificate-authority-data: ${Buffer.from(this.caPem).toString('base64')}` : '\n    insecure-skip-tls-verify: true';
    writeFileSync(
      path,
      `apiVersion: v1
kind: Config
clusters:
- name: emulator
  cluster:
    server: ${this.url}${ca}
users:
- name: tokenwarden
  user:
    token: ${options.token ?? this.token}
contexts:
- name: emulator
  context:
    cluster: emulator
    user: tokenwarden
    namespace: ${options.namespace ?? 'default'}
current-context: emulator
`,
      { mode: 0o600 },
    );
    return path;
  }

  /** Lays out the files a pod sees under /var/run/secrets/kubernetes.io/serviceaccount, below a prefix. */
  writeServiceAccount(namespace = 'default'): { pathPrefix: string; env: Record<string, string> } {
    if (!this.caPem) throw new Error('in-cluster configuration needs an emulator serving TLS');
    const pathPrefix = tempDir('in-cluster');
    const dir = join(pathPrefix, 'var/run/secrets/kubernetes.io/serviceaccount');
    execFileSync('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'token'), this.token, { mode: 0o600 });
    writeFileSync(join(dir, 'ca.crt'), this.caPem);
    writeFileSync(join(dir, 'namespace'), namespace);
    const port = new URL(this.url).port;
    return { pathPrefix, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port } };
  }

  // ---- state, for tests to seed and inspect ----

  createNamespace(name: string): void {
    this.namespaces.add(name);
  }

  deleteNamespace(name: string): void {
    this.namespaces.delete(name);
    for (const key of [...this.objects.keys()]) if (key.split('/')[1] === name) this.objects.delete(key);
  }

  /** Stores an object directly (as another controller or a person with kubectl would). */
  seed(resource: string, obj: Obj): Obj {
    const type = this.type(resource);
    const ns = obj.metadata?.namespace ?? 'default';
    this.namespaces.add(ns);
    const existing = this.objects.get(key(resource, ns, obj.metadata.name));
    const stored = this.stamp(type, normalise(type, structuredClone(obj)), ns, existing);
    this.objects.set(key(resource, ns, obj.metadata.name), stored);
    return structuredClone(stored);
  }

  get(resource: string, namespace: string, name: string): Obj | undefined {
    const obj = this.objects.get(key(resource, namespace, name));
    return obj ? structuredClone(obj) : undefined;
  }

  remove(resource: string, namespace: string, name: string): void {
    this.objects.delete(key(resource, namespace, name));
  }

  /** The decoded value of one key of a Secret, or undefined. */
  secretValue(namespace: string, name: string, dataKey: string): string | undefined {
    const data = this.objects.get(key('secrets', namespace, name))?.data?.[dataKey];
    return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
  }

  /** Bumps an object's resourceVersion as a concurrent writer would, optionally changing it. */
  touch(resource: string, namespace: string, name: string, change: (obj: Obj) => void = () => {}): void {
    const k = key(resource, namespace, name);
    const obj = this.objects.get(k);
    if (!obj) throw new Error(`no ${resource} ${namespace}/${name}`);
    change(obj);
    obj.metadata.resourceVersion = String(++this.revision);
  }

  // ---- faults ----

  /** The next `times` writes that match answer 409 Conflict, as if another writer got there first. */
  forceConflicts(times: number, match: Match = {}): void {
    this.faults.push({ verbs: ['update', 'patch'], ...match, status: 409, reason: 'Conflict', times });
  }

  /** Requests that match answer 403 Forbidden (RBAC) until allow() is called. */
  forbid(match: Match): void {
    this.faults.push({ ...match, status: 403, reason: 'Forbidden', times: Number.POSITIVE_INFINITY });
  }

  allow(): void {
    this.faults = this.faults.filter((f) => f.status !== 403);
  }

  /** The next `times` matching requests answer `status` (500 by default). */
  failNext(times: number, match: Match & { status?: number } = {}): void {
    const status = match.status ?? 500;
    this.faults.push({ ...match, status, reason: status >= 500 ? 'InternalError' : 'BadRequest', times });
  }

  /** Runs once, just before the next write is applied: the place for a concurrent writer. */
  beforeNextWrite(hook: (rec: RequestRecord) => void): void {
    this.beforeWriteHooks.push(hook);
  }

  clearFaults(): void {
    this.faults = [];
    this.beforeWriteHooks = [];
  }

  // ---- request log ----

  writes(match: Match = {}): RequestRecord[] {
    return this.requests.filter((r) => WRITE_VERBS.includes(r.verb) && !r.dryRun && matches(match, r));
  }

  requestsMatching(match: Match): RequestRecord[] {
    return this.requests.filter((r) => matches(match, r));
  }

  clearLog(): void {
    this.requests.length = 0;
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const query = Object.fromEntries(url.searchParams);
    const rec: RequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      verb: 'get',
      contentType: req.headers['content-type']?.split(';')[0],
      status: 0,
      dryRun: query.dryRun === 'All',
    };
    let status = 200;
    let body: Obj;
    try {
      const raw = await readBody(req);
      if (req.headers.authorization !== `Bearer ${this.token}`) {
        throw new HttpError(401, 'Unauthorized', 'Unauthorized');
      }
      [status, body] = this.route(rec, raw);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, 'InternalError', `emulator: ${(err as Error).message}`);
      status = e.code;
      body = statusObject(e);
    }
    rec.status = status;
    this.requests.push(rec);
    const q = url.search ? url.search : '';
    appendFileSync(this.logFile, `${new Date().toISOString()} ${rec.method} ${rec.path}${q} ${status}\n`);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private route(rec: RequestRecord, raw: string): [number, Obj] {
    const path = rec.path;
    if (path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews' && rec.method === 'POST') {
      // Answers from the forbid() faults, without using them up: what RBAC would allow.
      rec.resource = 'selfsubjectaccessreviews';
      rec.verb = 'create';
      const spec = parseJson(raw)?.spec ?? {};
      const ra = spec.resourceAttributes ?? {};
      const probe: RequestRecord = { ...rec, verb: ra.verb, resource: ra.resource, namespace: ra.namespace, name: ra.name };
      const denied = this.faults.some((f) => f.status === 403 && f.times > 0 && matches(f, probe));
      return [201, { kind: 'SelfSubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', spec, status: { allowed: !denied, ...(denied ? { reason: 'forbidden by the emulator' } : {}) } }];
    }
    const nsOnly = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path);
    if (nsOnly) {
      rec.resource = 'namespaces';
      rec.name = nsOnly[1];
      if (rec.method !== 'GET') throw new HttpError(405, 'MethodNotAllowed', 'the emulator only reads namespaces');
      this.applyFaults(rec);
      if (!this.namespaces.has(nsOnly[1])) throw notFound('namespaces', '', nsOnly[1]);
      return [200, { kind: 'Namespace', apiVersion: 'v1', metadata: { name: nsOnly[1] }, status: { phase: 'Active' } }];
    }
    const m = /^(\/api\/v1|\/apis\/[^/]+\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    const type = m && TYPE_BY_RESOURCE.get(m[3]);
    if (!m || !type || type.prefix !== m[1]) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${rec.method} ${path})`);
    const [, , namespace, , name] = m;
    rec.resource = type.resource;
    rec.namespace = namespace;
    rec.name = name;
    rec.verb = verbOf(rec.method, name, rec.query);
    const body = raw ? parseJson(raw) : undefined;
    if (rec.verb === 'create' && typeof body?.metadata?.name === 'string') rec.name = body.metadata.name;
    this.applyFaults(rec);
    if (WRITE_VERBS.includes(rec.verb) && !rec.dryRun) {
      const hooks = this.beforeWriteHooks.splice(0);
      for (const hook of hooks) hook(rec);
    }
    switch (rec.verb) {
      case 'get':
        return [200, this.read(type, namespace, name!)];
      case 'list':
        return [200, this.list(type, namespace, rec.query.labelSelector)];
      case 'watch':
        throw new HttpError(405, 'MethodNotAllowed', 'watch is not emulated; re-read instead');
      case 'create':
        return [201, this.create(type, namespace, body, rec.dryRun)];
      case 'update':
        return [200, this.update(type, namespace, name!, body, rec.dryRun)];
      case 'patch':
        if (type.resource !== 'secrets') rec.patch = body;
        return [200, this.patch(type, namespace, name!, body, rec.contentType, rec.dryRun)];
      case 'delete':
        return [200, this.delete(type, namespace, name!, body, rec.dryRun)];
    }
  }

  private applyFaults(rec: RequestRecord): void {
    const fault = this.faults.find((f) => f.times > 0 && matches(f, rec));
    if (!fault) return;
    fault.times--;
    const type = rec.resource ? TYPE_BY_RESOURCE.get(rec.resource) : undefined;
    const what = `${rec.resource ?? 'resource'} "${rec.name ?? ''}"`;
    if (fault.status === 403) {
      throw new HttpError(
        403,
        'Forbidden',
        `${what} is forbidden: User "${this.user}" cannot ${rec.verb} resource "${rec.resource}" in API group "${type?.group ?? ''}" in the namespace "${rec.namespace}"`,
        { name: rec.name, group: type?.group, kind: rec.resource },
      );
    }
    if (fault.status === 409) {
      // As if a concurrent writer had just changed the object.
      if (rec.resource && rec.namespace && rec.name) {
        const obj = this.objects.get(key(rec.resource, rec.namespace, rec.name));
        if (obj) obj.metadata.resourceVersion = String(++this.revision);
      }
      throw conflict(rec.resource ?? '', rec.name ?? '');
    }
    throw new HttpError(fault.status, fault.reason, `emulated failure (${fault.status})`);
  }

  private type(resource: string): ResourceType {
    const type = TYPE_BY_RESOURCE.get(resource);
    if (!type) throw new Error(`the emulator does not know ${resource}`);
    return type;
  }

  private read(type: ResourceType, ns: string, name: string): Obj {
    const obj = this.objects.get(key(type.resource, ns, name));
    if (!obj) throw notFound(type.resource, type.group, name);
    return obj;
  }

  private list(type: ResourceType, ns: string, selector: string | undefined): Obj {
    const wanted = parseSelector(selector);
    const items = [...this.objects.entries()]
      .filter(([k]) => k.startsWith(`${type.resource}/${ns}/`))
      .map(([, v]) => v)
      .filter((o) => wanted.every((test) => test(o.metadata.labels ?? {})));
    return { kind: `${type.kind}List`, apiVersion: apiVersion(type), metadata: { resourceVersion: String(this.revision) }, items };
  }

  private create(type: ResourceType, ns: string, body: Obj | undefined, dryRun: boolean): Obj {
    if (!this.namespaces.has(ns)) throw notFound('namespaces', '', ns);
    const name = body?.metadata?.name;
    if (!name) throw invalid(type, '', 'metadata.name: Required value: name or generateName is required');
    if (body.metadata.namespace && body.metadata.namespace !== ns) {
      throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    if (body.metadata.resourceVersion) throw invalid(type, name, 'metadata.resourceVersion: Invalid value: must be empty on create');
    if (this.objects.has(key(type.resource, ns, name))) {
      throw new HttpError(409, 'AlreadyExists', `${type.resource} "${name}" already exists`, { name, group: type.group, kind: type.resource });
    }
    const obj = this.stamp(type, normalise(type, structuredClone(body)), ns, undefined, dryRun);
    if (!dryRun) this.objects.set(key(type.resource, ns, name), obj);
    return obj;
  }

  private update(type: ResourceType, ns: string, name: string, body: Obj | undefined, dryRun: boolean): Obj {
    if (!body?.metadata) throw new HttpError(400, 'BadRequest', 'the request body is not an object');
    if (body.metadata.name !== name) {
      throw new HttpError(400, 'BadRequest', `the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`);
    }
    const existing = this.read(type, ns, name);
    const rv = body.metadata.resourceVersion;
    if (rv && rv !== existing.metadata.resourceVersion) throw conflict(type.resource, name);
    return this.replaceWith(type, ns, existing, normalise(type, structuredClone(body)), dryRun);
  }

  private patch(type: ResourceType, ns: string, name: string, body: unknown, contentType: string | undefined, dryRun: boolean): Obj {
    const existing = this.read(type, ns, name);
    let next: Obj;
    if (contentType === 'application/json-patch+json') {
      if (!Array.isArray(body)) throw new HttpError(400, 'BadRequest', 'a JSON patch must be an array of operations');
      next = applyJsonPatch(structuredClone(existing), body);
    } else if (contentType === 'application/merge-patch+json' || contentType === 'application/strategic-merge-patch+json') {
      const rv = (body as Obj | undefined)?.metadata?.resourceVersion;
      if (rv && rv !== existing.metadata.resourceVersion) throw conflict(type.resource, name);
      // Strategic merge is treated as a JSON merge patch: enough for maps such as annotations.
      next = mergePatch(structuredClone(existing), body) as Obj;
    } else {
      throw new HttpError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
    }
    next.metadata = { ...next.metadata, name, namespace: ns, uid: existing.metadata.uid };
    return this.replaceWith(type, ns, existing, normalise(type, next), dryRun);
  }

  private delete(type: ResourceType, ns: string, name: string, body: Obj | undefined, dryRun: boolean): Obj {
    const existing = this.read(type, ns, name);
    const rv = body?.preconditions?.resourceVersion;
    if (rv && rv !== existing.metadata.resourceVersion) throw conflict(type.resource, name);
    const uid = body?.preconditions?.uid;
    if (uid && uid !== existing.metadata.uid) throw conflict(type.resource, name);
    if (!dryRun) {
      this.objects.delete(key(type.resource, ns, name));
      this.revision++;
    }
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: type.group, kind: type.resource, uid: existing.metadata.uid } };
  }

  private replaceWith(type: ResourceType, ns: string, existing: Obj, next: Obj, dryRun: boolean): Obj {
    if (type.resource === 'secrets' && existing.immutable && JSON.stringify(existing.data ?? {}) !== JSON.stringify(next.data ?? {})) {
      throw invalid(type, existing.metadata.name, 'data: Forbidden: field is immutable when `immutable` is set');
    }
    const stored = this.stamp(type, next, ns, existing, dryRun);
    if (!dryRun) this.objects.set(key(type.resource, ns, existing.metadata.name), stored);
    return stored;
  }

  /** Server-owned metadata: uid, creationTimestamp, resourceVersion, generation. */
  private stamp(type: ResourceType, obj: Obj, ns: string, existing: Obj | undefined, dryRun = false): Obj {
    obj.apiVersion = apiVersion(type);
    obj.kind = type.kind;
    obj.metadata = {
      ...obj.metadata,
      namespace: ns,
      uid: existing?.metadata.uid ?? randomUUID(),
      creationTimestamp: existing?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      resourceVersion: dryRun ? (existing?.metadata.resourceVersion ?? '') : String(++this.revision),
    };
    if (obj.spec !== undefined && type.group === 'apps') {
      const changed = JSON.stringify(obj.spec) !== JSON.stringify(existing?.spec);
      obj.metadata.generation = (existing?.metadata.generation ?? 0) + (changed || !existing ? 1 : 0);
    }
    return obj;
  }
}

export async function startKubernetesEmulator(options: EmulatorOptions = {}): Promise<KubernetesEmulator> {
  return new KubernetesEmulator(options).start();
}

/**
 * The set-up shared by the test files that drive product code against the emulator directly:
 * an emulator for the whole file, official clients through a written kubeconfig (its context in
 * `kubeconfigNamespace` when given), faults, RBAC denials and the request log reset before each
 * test, and a debug logger into LOG_DIR/<logName>-<pid>.log. `started` hands the emulator and
 * clients to the file's own variables once they exist.
 */
export function useKubernetesEmulator(
  options: { namespaces: string[]; logName: string; kubeconfigNamespace?: string },
  started: (cluster: { k8s: KubernetesEmulator; kube: KubeClients }) => void,
): { logger: Logger } {
  const logStream = createWriteStream(join(LOG_DIR, `${options.logName}-${process.pid}.log`));
  const logger = createLogger({ level: 'debug', stream: logStream });
  let k8s: KubernetesEmulator | undefined;
  beforeAll(async () => {
    k8s = await startKubernetesEmulator({ namespaces: options.namespaces });
    const kube = kubeClients(loadKubeConfig({ mode: 'kubeconfig', path: k8s.writeKubeconfig({ namespace: options.kubeconfigNamespace }) }));
    started({ k8s, kube });
  });
  afterAll(async () => {
    await k8s?.stop();
    await new Promise((r) => logStream.end(r));
  });
  beforeEach(() => {
    k8s!.clearFaults();
    k8s!.allow();
    k8s!.clearLog();
  });
  return { logger };
}

// ---- helpers ----

function key(resource: string, ns: string, name: string): string {
  return `${resource}/${ns}/${name}`;
}

function apiVersion(type: ResourceType): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

function verbOf(method: string, name: string | undefined, query: Record<string, string>): Verb {
  switch (method) {
    case 'GET':
      return name ? 'get' : query.watch === 'true' || query.watch === '1' ? 'watch' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      throw new HttpError(405, 'MethodNotAllowed', `method ${method} is not allowed`);
  }
}

function matches(match: Match, rec: RequestRecord): boolean {
  return (
    (!match.verbs || match.verbs.includes(rec.verb)) &&
    (!match.resource || match.resource === rec.resource) &&
    (!match.namespace || match.namespace === rec.namespace) &&
    (!match.name || match.name === rec.name)
  );
}

function normalise(type: ResourceType, obj: Obj): Obj {
  if (type.resource !== 'secrets') return obj;
  obj.type ??= 'Opaque';
  const data: Record<string, string> = { ...(obj.data ?? {}) };
  for (const [k, v] of Object.entries(obj.data ?? {})) {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) {
      throw invalid(type, obj.metadata?.name ?? '', `data[${k}]: Invalid value: "<secret contents redacted>": illegal base64 data`);
    }
  }
  for (const [k, v] of Object.entries(obj.stringData ?? {})) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
  delete obj.stringData;
  if (Object.keys(data).length) obj.data = data;
  else delete obj.data;
  return obj;
}

function statusObject(e: HttpError): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: e.message, reason: e.reason, details: e.details, code: e.code };
}

function notFound(resource: string, group: string, name: string): HttpError {
  return new HttpError(404, 'NotFound', `${resource}${group ? `.${group}` : ''} "${name}" not found`, { name, group, kind: resource });
}

function conflict(resource: string, name: string): HttpError {
  return new HttpError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, kind: resource },
  );
}

function invalid(type: ResourceType, name: string, cause: string): HttpError {
  return new HttpError(422, 'Invalid', `${type.kind} "${name}" is invalid: ${cause}`, { name, group: type.group, kind: type.kind });
}

function parseJson(raw: string): any {
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'BadRequest', 'the request body is not valid JSON');
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Equality-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, joined by commas. */
function parseSelector(selector: string | undefined): ((labels: Record<string, string>) => boolean)[] {
  if (!selector) return [];
  return selector.split(',').map((part) => {
    const p = part.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([^!=]+)!=(.*)$/.exec(p))) return (l) => l[m![1]] !== m![2];
    if ((m = /^([^!=]+)==?(.*)$/.exec(p))) return (l) => l[m![1]] === m![2];
    if ((m = /^!(.+)$/.exec(p))) return (l) => !(m![1] in l);
    return (l) => p in l;
  });
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const out: Obj = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function applyJsonPatch(doc: Obj, ops: Obj[]): Obj {
  for (const op of ops) {
    const parts = String(op.path)
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    if (last === undefined) throw new HttpError(422, 'Invalid', 'a JSON patch path must not be empty');
    let parent: any = doc;
    for (const p of parts) {
      if (parent?.[p] === undefined) {
        if (op.op !== 'add') throw new HttpError(422, 'Invalid', `the path ${op.path} does not exist`);
        parent[p] = {};
      }
      parent = parent[p];
    }
    switch (op.op) {
      case 'add':
      case 'replace':
        if (op.op === 'replace' && !(last in parent)) throw new HttpError(422, 'Invalid', `the path ${op.path} does not exist`);
        if (Array.isArray(parent) && last === '-') parent.push(op.value);
        else parent[last] = op.value;
        break;
      case 'remove':
        if (!(last in parent)) throw new HttpError(422, 'Invalid', `the path ${op.path} does not exist`);
        delete parent[last];
        break;
      case 'test':
        if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw new HttpError(422, 'Invalid', `test operation failed at ${op.path}`);
        break;
      default:
        throw new HttpError(422, 'Invalid', `unsupported JSON patch operation ${op.op}`);
    }
  }
  return doc;
}

function selfSignedCertificate(): { cert: string; key: string } {
  const dir = tempDir('k8s-tls');
  const keyFile = join(dir, 'tls.key');
  const certFile = join(dir, 'tls.crt');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=kubernetes',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyFile, '-out', certFile],
    { stdio: 'ignore' },
  );
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}
