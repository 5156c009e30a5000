/**
 * An upstream that issues tokens tokenwarden does not mint (a CPD-style login, OAuth2, a
 * Kubernetes Secret written by another platform). Configured per binding in place of minting.
 */
export interface FetchedToken {
  token: string;
  /** Epoch ms; from the JWT `exp`, `expires_in`, or configuration. */
  expiresAt: number;
}

export interface Source {
  readonly describe: string;
  fetch(): Promise<FetchedToken>;
}
