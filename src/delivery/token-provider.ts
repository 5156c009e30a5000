import { type Authority, type CreateTokenInput, type Principal, SYSTEM_PRINCIPAL } from '../authority/authority.js';
import type { Store } from '../store/store.js';
import { parseToken } from '../token/format.js';
import type { BindingRecord } from './bindings/spec.js';

/** The controller acts as this principal: audit rows read "controller", never a person. */
export const CONTROLLER_PRINCIPAL: Principal = { ...SYSTEM_PRINCIPAL, actorName: 'controller' };

export interface IssuedToken {
  /** tokenwarden's token id, or null for an upstream's token (nothing to revoke here). */
  tokenId: string | null;
  plaintext: string;
  expiresAt: number;
}

/**
 * Where a binding's tokens come from. `mint` (tokenwarden issues them) is built in; a binding
 * with a `source:` gets its provider from the upstream-refresh part (src/sources/), through
 * ControllerOptions.sourceProvider.
 */
export interface TokenProvider {
  readonly kind: string;
  /** Whether tokenwarden's verifier sees this token in use (usage confirmation is only possible then). */
  readonly verifiable: boolean;
  /**
   * Obtains a new token and calls `record` with it inside a store transaction, so that a minted
   * token and the rotation that owns it commit together (a network fetch happens before the
   * transaction: a token fetched but never recorded has nothing to revoke).
   */
  issue(binding: BindingRecord, oldTokenId: string | null, record: (issued: IssuedToken, tx: Store) => Promise<void>): Promise<void>;
  /** Retires a token this provider issued: revokes a minted one; nothing for an upstream's. */
  retire(tx: Store, tokenId: string, reason: string): Promise<void>;
  /** The id `issue` records for this token, to tell whether a sink still holds the current one. */
  idOf(plaintext: string): string | null;
}

export type SourceProviderFactory = (binding: BindingRecord) => TokenProvider;

export class MintProvider implements TokenProvider {
  readonly kind = 'mint';
  readonly verifiable = true;

  constructor(private readonly authority: Authority) {}

  async issue(binding: BindingRecord, oldTokenId: string | null, record: (issued: IssuedToken, tx: Store) => Promise<void>): Promise<void> {
    await this.authority.store.transaction(async (tx) => {
      const input: CreateTokenInput & { replaces?: string } = {
        // normalizeSpec guarantees these for a binding without source:
        actor: binding.spec.actor!,
        name: `binding:${binding.name}`,
        scopes: binding.spec.scopes!,
        lifetimeMs: binding.lifetimeMs,
        bindingId: binding.id,
        // Lineage, and lets the successor carry the same name while its predecessor is still live.
        ...(oldTokenId ? { replaces: oldTokenId } : {}),
      };
      const created = await this.within(tx).createToken(CONTROLLER_PRINCIPAL, input);
      await record({ tokenId: created.token.id, plaintext: created.plaintext, expiresAt: Date.parse(created.token.expiresAt) }, tx);
    });
  }

  async retire(tx: Store, tokenId: string, reason: string): Promise<void> {
    const row = await tx.findToken(tokenId);
    if (!row || row.revoked_at !== null) return;
    await this.within(tx).revokeToken(CONTROLLER_PRINCIPAL, tokenId, reason);
  }

  idOf(plaintext: string): string | null {
    const parsed = parseToken(plaintext);
    return parsed.ok ? parsed.id : null;
  }

  /** The authority's rules, audit and events, inside the caller's transaction. */
  private within(tx: Store): Authority {
    return this.authority.within(tx);
  }
}
