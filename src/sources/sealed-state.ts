import { createHash } from 'node:crypto';
import { SealedBox } from '../token/sealed.js';
import { type SecretRef, describeRef, resolveSecret } from './secret-ref.js';

/**
 * Source state that must survive a restart but is itself a credential (an OAuth2 refresh token
 * rotated by the upstream) is stored sealed with AES-256-GCM. The key lives outside the state
 * (an env var or a mounted file); the binding name is the associated data, so a sealed value
 * cannot be moved to another binding.
 */
export class SealingKey {
  private constructor(private readonly box: SealedBox, readonly describe: string) {}

  static fromRef(ref: SecretRef, env?: NodeJS.ProcessEnv): SealingKey {
    const text = resolveSecret('state key', ref, env).trim();
    const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
    if (key.length !== 32) {
      throw new Error(`state key (${describeRef(ref)}) must be 32 bytes in base64 or hex; create one with "openssl rand -base64 32"`);
    }
    return new SealingKey(SealedBox.withKey(key), describeRef(ref));
  }

  static fromBytes(key: Buffer): SealingKey {
    if (key.length !== 32) throw new Error('a sealing key is 32 bytes');
    return new SealingKey(SealedBox.withKey(key), 'in-memory key');
  }

  /** The server's delivery key, which also seals its source state. */
  static fromBox(box: SealedBox, describe: string): SealingKey {
    return new SealingKey(box, describe);
  }

  seal(plaintext: string, context: string): string {
    return this.box.seal(plaintext, context);
  }

  open(sealed: string, context: string): string {
    const opened = this.box.open(sealed, context);
    if (opened === null) {
      throw new Error(`sealed source state for "${context}" cannot be opened with the configured state key (${this.describe}); was the key changed?`);
    }
    return opened;
  }
}

/** Where sealed source state is kept: the server's store, or the agent's state file. Values are already sealed. */
export interface SourceStateStore {
  get(key: string): Promise<string | undefined>;
  put(key: string, sealed: string): Promise<void>;
  delete(key: string): Promise<void>;
}

/** One secret of one binding, sealed at rest. */
export interface SecretSlot {
  load(): Promise<string | undefined>;
  save(value: string): Promise<void>;
}

export function sealedSlot(store: SourceStateStore, key: SealingKey, name: string): SecretSlot {
  return {
    async load() {
      const sealed = await store.get(name);
      return sealed === undefined ? undefined : key.open(sealed, name);
    },
    save: (value) => store.put(name, key.seal(value, name)),
  };
}

/** A short fingerprint of a secret, to notice that the operator replaced it without keeping it. */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url').slice(0, 16);
}

export class MemoryStateStore implements SourceStateStore {
  readonly values = new Map<string, string>();
  async get(key: string) {
    return this.values.get(key);
  }
  async put(key: string, sealed: string) {
    this.values.set(key, sealed);
  }
  async delete(key: string) {
    this.values.delete(key);
  }
}
