import type { AuthorityEvents } from '../authority/events.js';
import type { Logger } from '../log.js';
import { RevocationListener } from '../store/pg-notify.js';
import type { Store } from '../store/store.js';
import { ChangeWatch } from './change-watch.js';

/**
 * One party told of every change that makes a cached answer wrong: a verifier's caches (this
 * thread's, the front threads', the authListen thread's), the delivery controller.
 */
export interface ChangeSubscriber {
  /**
   * A token revoked or its expiry brought forward. `local`: by this process (the authority's
   * event, re-read it); `remote`: seen in the store or a NOTIFY from another replica (refuse it).
   */
  revoked(tokenId: string, origin: 'local' | 'remote'): void;
  /** An identity's roles, scopes or disabled flag changed; `*`: a role's scopes, any identity. */
  actorChanged(actorId: string): void;
}

/**
 * The one owner of change propagation (docs/architecture.md): the authority's in-process
 * events, the store poll (both engines, every 500 ms) and PostgreSQL LISTEN/NOTIFY reach every
 * subscriber, in this process and — through the listeners' message ports — in its threads.
 * The authority emits only after its transaction commits, so nobody re-emits by hand.
 */
export class ChangeFanout {
  private readonly subscribers: ChangeSubscriber[] = [];
  private readonly watch: ChangeWatch;
  private readonly notify: RevocationListener | undefined;

  constructor(deps: { store: Store; events?: AuthorityEvents; logger: Logger; storeUrl: string }) {
    deps.events?.on('token-revoked', (id) => this.revoked(id, 'local'));
    deps.events?.on('actor-changed', (id) => this.actorChanged(id));
    // Wall time, not the injected clock: the poll is about rows other processes wrote.
    this.watch = new ChangeWatch(deps.store, { markRevoked: (id) => this.revoked(id, 'remote'), invalidateActor: (id) => this.actorChanged(id) }, () => Date.now());
    this.notify =
      deps.store.engine === 'postgres'
        ? new RevocationListener({
            url: deps.storeUrl,
            onRevoked: (id) => this.revoked(id, 'remote'),
            onGrantsChanged: (id) => this.actorChanged(id),
            // The poll reconciles whatever a dropped LISTEN connection missed.
            onResync: () => this.watch.check(),
            logger: deps.logger,
          })
        : undefined;
  }

  subscribe(subscriber: ChangeSubscriber): void {
    this.subscribers.push(subscriber);
  }

  async start(): Promise<void> {
    await this.watch.start();
    await this.notify?.start();
  }

  async stop(): Promise<void> {
    this.watch.stop();
    await this.notify?.stop();
  }

  private revoked(id: string, origin: 'local' | 'remote'): void {
    for (const s of this.subscribers) s.revoked(id, origin);
  }

  private actorChanged(id: string): void {
    for (const s of this.subscribers) s.actorChanged(id);
  }
}

/** A verifier's caches as a subscriber: a local event re-reads the token, a remote revocation refuses it at once. */
export function verifierSubscriber(v: { invalidate(id: string): void; markRevoked(id: string): void; invalidateActor(id: string): void }): ChangeSubscriber {
  return {
    revoked: (id, origin) => (origin === 'local' ? v.invalidate(id) : v.markRevoked(id)),
    actorChanged: (id) => v.invalidateActor(id),
  };
}
