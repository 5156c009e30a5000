import type { Clock } from '../../clock.js';
import type { IssuedToken, SourceProviderFactory, TokenProvider } from '../token-provider.js';
import type { SealedBox } from '../../token/sealed.js';
import type { BindingRecord } from '../bindings/spec.js';
import { problem } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../observe/metrics.js';
import { DbSourceState } from '../../store/source-state.js';
import { upstreamTokenId } from '../../token/format.js';
import type { Store } from '../../store/store.js';
import { checkHttpSource } from '../../sources/source-config.js';
import { type ClosableSource, createSource } from '../../sources/factory.js';
import { safeMessage } from './refresher.js';
import { type SecretSlot, SealingKey, sealedSlot } from '../../sources/sealed-state.js';
import type { FetchedToken } from '../../sources/source.js';

export interface SourceProviderDeps {
  store: Store;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** The delivery key's box: seals source state at rest (one key to share between replicas). */
  sealed: SealedBox;
  env?: NodeJS.ProcessEnv;
  kubernetes?: unknown;
}

/**
 * Plugs upstream sources into the delivery controller (DeliveryOptions.sourceProvider): a
 * binding with `source:` gets its token from the upstream instead of the authority. The
 * controller keeps scheduling, delivery, retries and health; this adds the fetch, the failure
 * metric, and sealed per-binding state (the rotated OAuth2 refresh token) in the store.
 * Called once with `row: null` when a binding is validated: configuration problems surface then,
 * naming the field (`source.body.password`).
 */
export function createSourceProviderFactory(deps: SourceProviderDeps): SourceProviderFactory {
  const built = new Map<string, { shape: string; provider: TokenProvider }>();
  return (binding: BindingRecord) => {
    const spec = binding.spec.source as Record<string, unknown> & { kind: string };
    const shape = JSON.stringify(spec);
    const validating = binding.row === null;
    const cached = validating ? undefined : built.get(binding.id);
    if (cached && cached.shape === shape) return cached.provider;
    if (spec.kind !== 'kubernetes-secret') {
      const problems = checkHttpSource(spec, 'source');
      if (problems.length) {
        const first = problems[0]!;
        throw problem.invalid(first.slice(0, first.indexOf(':')), problems.join('; '));
      }
    }
    const provider = new SourceTokenProvider(binding.name, spec, deps);
    if (!validating) {
      if (cached) void (cached.provider as SourceTokenProvider).close();
      built.set(binding.id, { shape, provider });
    }
    return provider;
  };
}

/**
 * A source's failure as the controller sees it: a secret-free message, the source kind (the
 * binding's lastError starts with it) and the source's own reason when it has one; 'gone' (the
 * Secret was deleted, seed 002's offboarded user) turns the binding to state "gone".
 */
export class SourceFailure extends Error {
  readonly reason: string | undefined;
  constructor(readonly kind: string, message: string, reason?: unknown) {
    super(message);
    this.name = 'SourceFailure';
    this.reason = typeof reason === 'string' ? reason : undefined;
  }
}

class SourceTokenProvider implements TokenProvider {
  readonly verifiable = false;
  readonly kind: string;
  private source: Promise<ClosableSource> | null = null;

  constructor(private readonly binding: string, private readonly spec: Record<string, unknown> & { kind: string }, private readonly deps: SourceProviderDeps) {
    this.kind = spec.kind;
  }

  private build(): Promise<ClosableSource> {
    this.source ??= (async () => {
      const sourceDeps = { clock: this.deps.clock, logger: this.deps.logger, env: this.deps.env, kubernetes: this.deps.kubernetes };
      return createSource(this.spec, sourceDeps, { slot: this.slot() });
    })();
    // A failed build (a kubeconfig not there yet) is tried again at the next attempt.
    this.source.catch(() => (this.source = null));
    return this.source;
  }

  /** Sealed with the delivery key, bound to the binding's name. */
  private slot(): SecretSlot {
    const state = new DbSourceState(this.deps.store, () => this.deps.clock.now());
    const name = `binding:${this.binding}`;
    return sealedSlot(state, SealingKey.fromBox(this.deps.sealed, 'the delivery key'), name);
  }

  async issue(_binding: BindingRecord, _old: string | null, record: (issued: IssuedToken, tx: Store) => Promise<void>): Promise<void> {
    let fetched: FetchedToken;
    try {
      fetched = await (await this.build()).fetch();
    } catch (err) {
      this.deps.metrics.refreshFailures.labels(this.binding, this.kind).inc();
      // The controller records this as the binding's last error: keep it free of secrets.
      throw new SourceFailure(this.kind, safeMessage(err), (err as { reason?: unknown }).reason);
    }
    await this.deps.store.transaction((tx) => record({ tokenId: upstreamTokenId(fetched.token), plaintext: fetched.token, expiresAt: fetched.expiresAt }, tx));
  }

  async retire(): Promise<void> {
    // An upstream's token cannot be revoked from here; it simply expires.
  }

  idOf(plaintext: string): string {
    return upstreamTokenId(plaintext);
  }

  async close(): Promise<void> {
    const s = await this.source?.catch(() => null);
    await s?.close?.();
  }
}
