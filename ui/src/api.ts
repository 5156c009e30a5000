import type { ActorView, AuditView, RoleView, TokenState, TokenView } from '../../src/authority/views.js';
import type { BindingView, RotationView } from '../../src/delivery/bindings/binding-service.js';
/**
 * The only way the UI talks to tokenwarden: the public REST API under /api/v1.
 *
 * The bearer token lives in this module's memory and nowhere else: not in localStorage,
 * sessionStorage, a cookie or the URL. A reload signs the user out; that is the price of
 * leaving no credential behind in the browser, and of having no ambient credential a
 * cross-site request could ride on (so there is nothing for CSRF to exploit).
 */

export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  field?: string;
  errors?: { field: string; message: string }[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: ProblemBody,
  ) {
    super(problem.detail ?? problem.title ?? `the server answered ${status}`);
  }

  /** Field → message, from the problem's `errors` list or its single `field`. */
  get fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const e of this.problem.errors ?? []) out[e.field] ??= e.message;
    if (this.problem.field && !out[this.problem.field]) out[this.problem.field] = this.message;
    return out;
  }
}

let bearer: string | null = null;
let onSessionLost: ((reason: string) => void) | null = null;

export function signIn(token: string): void {
  bearer = token;
}

export function signOut(): void {
  bearer = null;
}

/** Called when the API answers 401 for a signed-in session (the token was revoked or expired meanwhile). */
export function whenSessionLost(listener: (reason: string) => void): void {
  onSessionLost = listener;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError(0, { title: 'Server unreachable', detail: 'tokenwarden did not answer; check that it is running and reload' });
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const problem = (parsed && typeof parsed === 'object' ? parsed : { detail: text || res.statusText }) as ProblemBody;
    const err = new ApiError(res.status, problem);
    if (res.status === 401 && bearer && onSessionLost) onSessionLost(err.message);
    throw err;
  }
  return parsed as T;
}

// ---- the API's shapes (see /api/v1/openapi.json); the view types are the server's own ----

export type { TokenState };
export type Token = TokenView;
export type Actor = ActorView;
export type Role = RoleView;
export type AuditEntry = AuditView;
export type Binding = BindingView;
export type Rotation = RotationView;

export interface CreatedToken extends Token {
  token: string;
}

export interface Scope {
  name: string;
  description: string;
  builtin: boolean;
}

export interface Whoami {
  actor: string;
  tokenId: string | null;
  scopes: string[];
}

export interface Policy {
  tokens: { maxLifetime: { seconds: number; text: string }; defaultLifetime: { seconds: number; text: string } };
}

export const query = (params: Record<string, string | number | undefined | null>): string => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
};
