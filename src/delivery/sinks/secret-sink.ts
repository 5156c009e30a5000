import type { V1Secret } from '@kubernetes/client-node';
import { type Clock, systemClock } from '../../clock.js';
import { Problem, problem } from '../../errors.js';
import { type KubeClients, resolveKube } from '../../kubernetes/client.js';
import { type KubeAction, KubernetesError, describeKubeError, isConflict, isNotFound } from '../../kubernetes/errors.js';
import {
  ANNOTATION_CREATED,
  ANNOTATION_ROTATED_AT,
  ANNOTATION_TOKEN_ID,
  type FieldProblem,
  LABEL_BINDING,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  checkLabels,
  checkNamespace,
  checkObjectName,
  checkSecretKey,
  kubeTime,
  tokenRef,
} from '../../kubernetes/metadata.js';
import type { Logger } from '../../log.js';
import { backoff } from '../schedule.js';
import { type Sink, type SinkWatchOptions, watchByReading } from './sink.js';

export interface KubernetesSecretSinkSpec {
  namespace: string;
  name: string;
  /** The key inside the Secret's data; default "token". */
  key?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Take over a Secret that exists and that tokenwarden did not create for this binding (refused by default). */
  adopt?: boolean;
}

export interface KubernetesSinkDeps {
  /** A KubeConfig or kubeClients(); absent = kubectl's lookup (see resolveKube). */
  kubernetes?: unknown;
  clock?: Clock;
  /** The binding's name, put on the Secret as the tokenwarden.dev/binding label. */
  binding?: string;
  /** The binding's record of this sink: `delivered` = it wrote this key before, so the Secret is its own even if its marks were removed. */
  record?: { delivered: boolean };
  logger?: Logger;
  /** Attempts of read-modify-write when someone else changes the Secret meanwhile (default 5). */
  maxAttempts?: number;
  /** How to wait between conflicting attempts (tests record instead of sleeping). */
  sleep?: (ms: number) => Promise<void>;
}

/** Field-named problems of a sink spec, for binding validation before anything is written. */
export function checkKubernetesSecretSpec(spec: KubernetesSecretSinkSpec): FieldProblem[] {
  return [
    ...checkNamespace(spec.namespace, 'namespace'),
    ...checkObjectName(spec.name, 'name'),
    ...checkSecretKey(spec.key ?? 'token', 'key'),
    ...checkLabels(spec.labels, 'labels', 'labels'),
    ...checkLabels(spec.annotations, 'annotations', 'annotations'),
  ];
}

export function createKubernetesSecretSink(spec: KubernetesSecretSinkSpec, deps: KubernetesSinkDeps = {}): KubernetesSecretSink {
  return new KubernetesSecretSink(spec, deps);
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const encode = (token: string) => Buffer.from(token, 'utf8').toString('base64');
const decode = (data: string) => Buffer.from(data, 'base64').toString('utf8');

/**
 * Keeps a token in one key of a Secret. Other keys, labels and annotations are left as they
 * are; the Secret is written only when the token (or tokenwarden's own marks) differ from what
 * is there, so a retry or a restart of tokenwarden never makes consumers reload or restart.
 * Every update is a read-modify-write guarded by resourceVersion, retried a few times on 409.
 */
export class KubernetesSecretSink implements Sink {
  readonly describe: string;
  private readonly key: string;
  private readonly clock: Clock;
  private readonly maxAttempts: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private clients: KubeClients | undefined;
  /** This binding wrote here (its record says so, or this instance did). */
  private claimed: boolean;

  constructor(
    private readonly spec: KubernetesSecretSinkSpec,
    private readonly deps: KubernetesSinkDeps = {},
  ) {
    this.key = spec.key ?? 'token';
    this.describe = `secret:${spec.namespace}/${spec.name}#${this.key}`;
    this.clock = deps.clock ?? systemClock;
    this.maxAttempts = Math.max(1, deps.maxAttempts ?? 5);
    this.sleep = deps.sleep ?? defaultSleep;
    this.claimed = deps.record?.delivered ?? false;
  }

  /** Whether the Secret carries tokenwarden's ownership marks for this binding (the managed-by and binding labels). */
  private labelled(existing: V1Secret): boolean {
    const labels = existing.metadata?.labels ?? {};
    return labels[LABEL_MANAGED_BY] === MANAGED_BY && labels[LABEL_BINDING] === this.deps.binding;
  }

  /** A Secret tokenwarden did not create for this binding is refused, naming it, unless the spec adopts it. */
  private refuseForeign(existing: V1Secret): void {
    if (this.claimed || this.spec.adopt || this.labelled(existing)) return;
    throw problem.conflict(
      `the Secret ${this.spec.namespace}/${this.spec.name} already exists and tokenwarden did not create it for this binding (no ${LABEL_MANAGED_BY}=${MANAGED_BY}, ${LABEL_BINDING}=${this.deps.binding ?? ''} labels); choose another name, delete it, or set adopt: true on this sink to let tokenwarden take over key "${this.key}"`,
      'name',
    );
  }

  async write(token: string): Promise<{ changed: boolean }> {
    if (!token) throw new Error(`${this.describe}: refusing to write an empty token`);
    for (let attempt = 1; ; attempt++) {
      const existing = await this.get();
      try {
        if (!existing) {
          await this.create(token);
          this.claimed = true;
          this.deps.logger?.info({ binding: this.deps.binding, target: this.describe }, 'kubernetes secret created');
          return { changed: true };
        }
        this.refuseForeign(existing);
        const current = existing.data?.[this.key];
        const same = current !== undefined && decode(current) === token;
        const next = this.withToken(existing, token, same);
        this.claimed = true;
        if (!next) return { changed: false };
        await this.replace(next);
        this.deps.logger?.info(
          { binding: this.deps.binding, target: this.describe, tokenChanged: !same },
          same ? 'kubernetes secret metadata repaired' : 'kubernetes secret updated',
        );
        return { changed: !same };
      } catch (err) {
        // 409: someone changed or created it meanwhile; 404 on update: deleted meanwhile. Read again.
        if (!(isConflict(err) || (existing && isNotFound(err)))) throw err;
        await this.backOff(attempt, 'write', err);
      }
    }
  }

  async read(): Promise<string | null> {
    const existing = await this.get();
    const data = existing?.data?.[this.key];
    return data === undefined ? null : decode(data);
  }

  /**
   * A short periodic read (default every 5 s) rather than a Watch: one GET of one Secret, which the
   * RBAC for writing it already allows, and works the same against the test emulator.
   */
  watch(onChange: () => void, options: SinkWatchOptions = {}): () => void {
    return watchByReading(() => this.read(), onChange, options.pollMs ?? 5000);
  }

  /**
   * Takes the key out; deletes the whole Secret when tokenwarden created it, it still carries
   * tokenwarden's labels for this binding and nothing else lives in it. Never deletes a Secret
   * someone else made; leaves alone one that is not this binding's at all (not created, adopted or
   * written by it), and says why.
   */
  async remove(): Promise<{ removed: boolean; reason?: string }> {
    for (let attempt = 1; ; attempt++) {
      const existing = await this.get();
      if (!existing || existing.data?.[this.key] === undefined) return { removed: true };
      const others = Object.keys(existing.data ?? {}).filter((k) => k !== this.key);
      const labelled = this.labelled(existing);
      const createdByUs = existing.metadata?.annotations?.[ANNOTATION_CREATED] === 'true' && labelled;
      if (!labelled && !this.claimed && !this.spec.adopt) {
        const reason = `the Secret ${this.spec.namespace}/${this.spec.name} no longer carries tokenwarden's labels for this binding; left as it is`;
        this.deps.logger?.warn({ binding: this.deps.binding, target: this.describe }, `kubernetes secret not removed: ${reason}`);
        return { removed: false, reason };
      }
      try {
        if (createdByUs && others.length === 0) {
          await this.call('delete', () =>
            this.api.core.deleteNamespacedSecret({
              name: this.spec.name,
              namespace: this.spec.namespace,
              body: { preconditions: { resourceVersion: existing.metadata?.resourceVersion } },
            }),
          );
          this.deps.logger?.info({ binding: this.deps.binding, target: this.describe }, 'kubernetes secret deleted');
        } else {
          await this.replace(this.withoutToken(existing, createdByUs));
          this.deps.logger?.info({ binding: this.deps.binding, target: this.describe }, 'kubernetes secret key removed');
        }
        return { removed: true };
      } catch (err) {
        if (isNotFound(err)) return { removed: true };
        if (!isConflict(err)) throw err;
        await this.backOff(attempt, 'remove', err);
      }
    }
  }

  /**
   * At apply time: the namespace exists and RBAC lets tokenwarden write the Secret. A dry run
   * (`dryRun=All`) asks the API server itself, without writing and without needing permission
   * to read namespaces. A cluster that is unreachable now is not a reason to refuse a binding.
   */
  async check(): Promise<void> {
    let existing: V1Secret | null;
    try {
      existing = await this.get();
    } catch (err) {
      return this.cannotCheck(err);
    }
    if (existing) this.refuseForeign(existing);
    try {
      if (existing) await this.replace(existing, true);
      else await this.create('dry-run', true);
    } catch (err) {
      this.cannotCheck(err);
    }
  }

  private cannotCheck(err: unknown): void {
    const e = err instanceof KubernetesError ? err : describeKubeError(err, this.action('get'));
    if (e.failure === 'namespace-missing') throw problem.invalid('namespace', e.message);
    if (e.failure === 'forbidden') throw new Problem('validation', e.message, { field: 'namespace' });
    if (e.failure === 'invalid') throw new Problem('validation', e.message, { field: 'name' });
    this.deps.logger?.warn({ binding: this.deps.binding, target: this.describe, reason: e.failure }, 'cannot check the kubernetes secret sink now; will retry at delivery');
  }

  // ---- internals ----

  private get api(): KubeClients {
    this.clients ??= resolveKube(this.deps.kubernetes);
    return this.clients;
  }

  private action(verb: KubeAction['verb']): KubeAction {
    return { verb, resource: 'secrets', group: '', namespace: this.spec.namespace, name: this.spec.name };
  }

  /** Runs one API call; conflicts and not-founds pass through for the retry logic, the rest become clear errors. */
  private async call<T>(verb: KubeAction['verb'], fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isConflict(err) || (isNotFound(err) && verb !== 'create')) throw err;
      throw describeKubeError(err, this.action(verb));
    }
  }

  private async get(): Promise<V1Secret | null> {
    try {
      return await this.api.core.readNamespacedSecret({ name: this.spec.name, namespace: this.spec.namespace });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw describeKubeError(err, this.action('get'));
    }
  }

  private labels(): Record<string, string> {
    return {
      ...this.spec.labels,
      [LABEL_MANAGED_BY]: MANAGED_BY,
      ...(this.deps.binding ? { [LABEL_BINDING]: this.deps.binding } : {}),
    };
  }

  private async create(token: string, dryRun = false): Promise<void> {
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: this.spec.name,
        namespace: this.spec.namespace,
        labels: this.labels(),
        annotations: {
          ...this.spec.annotations,
          [ANNOTATION_CREATED]: 'true',
          [ANNOTATION_TOKEN_ID]: tokenRef(token),
          [ANNOTATION_ROTATED_AT]: kubeTime(this.clock.now()),
        },
      },
      data: { [this.key]: encode(token) },
    };
    await this.call('create', () =>
      this.api.core.createNamespacedSecret({ namespace: this.spec.namespace, body, ...(dryRun ? { dryRun: 'All' } : {}) }),
    );
  }

  private async replace(body: V1Secret, dryRun = false): Promise<void> {
    await this.call('update', () =>
      this.api.core.replaceNamespacedSecret({ name: this.spec.name, namespace: this.spec.namespace, body, ...(dryRun ? { dryRun: 'All' } : {}) }),
    );
  }

  /** The Secret with the token and tokenwarden's marks in place, or null when it already is so. */
  private withToken(existing: V1Secret, token: string, same: boolean): V1Secret | null {
    const meta = existing.metadata ?? {};
    const labels = { ...meta.labels };
    const annotations = { ...meta.annotations };
    let drift = false;
    const want = (map: Record<string, string>, k: string, v: string) => {
      if (map[k] !== v) {
        map[k] = v;
        drift = true;
      }
    };
    for (const [k, v] of Object.entries(this.labels())) want(labels, k, v);
    for (const [k, v] of Object.entries(this.spec.annotations ?? {})) want(annotations, k, v);
    want(annotations, ANNOTATION_TOKEN_ID, tokenRef(token));
    if (!same || !annotations[ANNOTATION_ROTATED_AT]) want(annotations, ANNOTATION_ROTATED_AT, kubeTime(this.clock.now()));
    if (same && !drift) return null;
    return {
      ...existing,
      metadata: { ...meta, labels, annotations },
      data: { ...existing.data, [this.key]: encode(token) },
    };
  }

  private withoutToken(existing: V1Secret, createdByUs: boolean): V1Secret {
    const meta = existing.metadata ?? {};
    const data = { ...existing.data };
    delete data[this.key];
    const annotations = { ...meta.annotations };
    delete annotations[ANNOTATION_TOKEN_ID];
    delete annotations[ANNOTATION_ROTATED_AT];
    const labels = { ...meta.labels };
    if (this.deps.binding && labels[LABEL_BINDING] === this.deps.binding) delete labels[LABEL_BINDING];
    if (!createdByUs) delete labels[LABEL_MANAGED_BY];
    return { ...existing, metadata: { ...meta, labels, annotations }, data };
  }

  private async backOff(attempt: number, what: string, err: unknown): Promise<void> {
    if (attempt >= this.maxAttempts) {
      throw new KubernetesError(
        'conflict',
        `${this.describe}: gave up after ${attempt} attempts to ${what}: the Secret kept changing under tokenwarden (409 Conflict); another controller may be writing the same key`,
        undefined,
        409,
      );
    }
    this.deps.logger?.debug({ binding: this.deps.binding, target: this.describe, attempt, status: (err as { code?: number }).code }, 'kubernetes secret changed meanwhile; reading again');
    // The one backoff (20 ms doubling, at most 1 s): conflicts between two writers resolve in a few rounds.
    await this.sleep(backoff(attempt + 1, { initialMs: 20, maxMs: 1000 }));
  }
}
