import { EventEmitter } from 'node:events';

/**
 * In-process fan-out of changes that must reach the verification caches at once.
 * Other replicas learn the same facts from the store (see verify/change-watch.ts).
 */
export interface AuthorityEvents {
  on(event: 'token-revoked', listener: (tokenId: string) => void): this;
  on(event: 'actor-changed', listener: (actorId: string) => void): this;
  emit(event: 'token-revoked', tokenId: string): boolean;
  emit(event: 'actor-changed', actorId: string): boolean;
}

export class AuthorityEvents extends EventEmitter {}
