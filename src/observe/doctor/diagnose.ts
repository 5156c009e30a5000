import { type TokenState, tokenState } from '../../authority/views.js';
import { formatDuration, iso } from '../../clock.js';
import { BindingQueries, type BindingTable } from '../../store/bindings.js';
import type { Store } from '../../store/store.js';
import { type ParseFailure, TOKEN_PREFIX, describeParseFailure, parseToken, upstreamTokenId } from '../../token/format.js';
import { type Verifier, hasScopes } from '../../verify/verifier.js';

export type DiagnosisReason = 'ok' | 'missing' | 'malformed' | 'unknown' | 'revoked' | 'expired' | 'disabled' | 'insufficient_scope';

export interface Diagnosis {
  /** What a verifying endpoint answers for this token and requirement. */
  status: 200 | 401 | 403;
  reason: DiagnosisReason;
  /** One or two plain sentences: why. */
  explanation: string;
  /** What to do about it. */
  hints: string[];
  /** Problems with how the value is written (a scheme inside it, whitespace) found before the token itself. */
  notes: string[];
  malformedPart?: ParseFailure;
  token?: {
    id: string;
    name: string;
    actor: string;
    actorDisabled: boolean;
    state: TokenState;
    scopes: string[];
    effectiveScopes: string[];
    createdAt: string;
    expiresAt: string;
    revokedAt: string | null;
    revokedBy: string | null;
    revokeReason: string | null;
    bindingId: string | null;
    lastUsedAt: string | null;
  };
  scopes?: { required: string[]; satisfy: 'all' | 'any'; missing: string[]; rolesGranting: Record<string, string[]>; droppedFromIdentity: string[] };
  /**
   * Not a tokenwarden token but the upstream's, which a source binding delivers (the binding's
   * fingerprint matches): tokenwarden does not verify it, the endpoint's own issuer does. Only a
   * probe of the endpoint (`--url`) can tell whether it works.
   */
  upstream?: { binding: string; source: string; current: true };
}

export interface DiagnoseInput {
  token: string;
  scopes?: string[];
  satisfy?: 'all' | 'any';
  /** The file the value was read from, when it was a file: one tokenwarden wrote itself ends with a newline by design. */
  file?: string;
}

const SCHEME = /^\s*(?:authorization\s*:\s*)?(bearer|token|basic|apikey)\s+/i;

/** Shows a token by its public id only: `twd_<id>_…`. */
export function publicForm(token: string): string {
  const parsed = parseToken(token);
  return parsed.ok ? `${TOKEN_PREFIX}${parsed.id}_…` : '(unparseable token)';
}

/**
 * Finds the value's problems in how it is written: a scheme word inside it ("Bearer twd_…",
 * "Token twd_…"), surrounding whitespace or a trailing newline. Returns the bare token and notes.
 */
export function unwrap(value: string): { token: string; notes: string[]; scheme?: string } {
  const notes: string[] = [];
  let token = value;
  if (token !== token.trim()) {
    notes.push(
      /\n\s*$/.test(token)
        ? 'the value ends with a newline; Prometheus and tokenwarden gate trim it, but a client that pastes it into a header as-is (curl -H "Authorization: Bearer $(cat …)" keeps it in some shells) sends a broken token'
        : 'the value has spaces around it; some clients send them as part of the token',
    );
    token = token.trim();
  }
  const m = SCHEME.exec(token);
  let scheme: string | undefined;
  if (m) {
    scheme = m[1];
    token = token.slice(m[0].length).trim();
    notes.push(
      scheme.toLowerCase() === 'bearer'
        ? 'the value already contains "Bearer "; a Secret for bearerTokenSecret or a credentials_file must hold only the token, or the client sends "Bearer Bearer twd_…"'
        : `the value is written as "${scheme} …"; tokenwarden only accepts "Authorization: Bearer <token>" (or the configured extra header with the bare token)`,
    );
  }
  return { token, notes, scheme };
}

/**
 * Explains in plain words why a token is refused (401/403) or accepted. The verdict is the
 * verifier's own (its trace, verify/verifier.ts) and the scope decision the one of
 * verify/decision.ts: this file only gathers the facts that explain them. Never echoes the secret.
 */
export async function diagnoseToken(store: Store, verifier: Pick<Verifier, 'trace'>, now: number, input: DiagnoseInput): Promise<Diagnosis> {
  const unwrapped = unwrap(input.token ?? '');
  const { token } = unwrapped;
  const bindings = await BindingQueries.of(store).list();
  // A file a binding delivers ends with a newline because tokenwarden writes it so (consumers trim it): not worth a warning.
  const ownFile = input.file !== undefined && bindings.some((b) => deliversFile(b, input.file!));
  const notes = ownFile ? unwrapped.notes.filter((n) => !n.startsWith('the value ends with a newline')) : unwrapped.notes;
  const required = [...new Set(input.scopes ?? [])];
  const satisfy = input.satisfy ?? 'all';
  const base = { notes, hints: [] as string[] };

  const trace = await verifier.trace(token);
  const { verdict } = trace;
  if (trace.parseFailure !== undefined && trace.parseFailure !== 'empty') {
    // The same verdict every run: an upstream's token is recognised by the fingerprint its binding keeps.
    const fingerprint = upstreamTokenId(token);
    const owner = bindings.find((b) => b.token_id === fingerprint && b.state !== 'removing');
    if (owner) {
      const source = (JSON.parse(owner.spec) as { source?: { kind?: string } }).source?.kind ?? 'upstream';
      return {
        ...base,
        status: 401,
        reason: 'malformed',
        malformedPart: trace.parseFailure,
        upstream: { binding: owner.name, source, current: true },
        explanation: `this is not a tokenwarden token but the ${source} upstream's current token, delivered by binding ${owner.name} (${fingerprint}); tokenwarden's own endpoints refuse it, the endpoint that trusts that upstream decides`,
        hints: [`probe the endpoint with --url to see whether it accepts the token; tokenwarden binding show ${owner.name} tells when it is refreshed next`],
      };
    }
  }
  if (trace.tokenId === null) {
    const failure = trace.parseFailure!;
    if (failure === 'empty') {
      return { ...base, status: 401, reason: 'missing', explanation: 'no token was given: the value is empty', hints: ['check that the file, variable or Secret key holds the token'] };
    }
    return {
      ...base,
      status: 401,
      reason: 'malformed',
      malformedPart: failure,
      explanation: `the token is malformed (${failure}): ${describeParseFailure(failure)}. It is refused before any lookup.`,
      hints: [
        failure === 'prefix'
          ? 'a tokenwarden token looks like twd_<12 characters>_<49 characters>; this one is from somewhere else, or a different value was stored'
          : 'copy the token again from where it was first shown, or mint a new one (tokenwarden token create …)',
      ],
    };
  }

  const id = trace.tokenId;
  const row = await store.findToken(id);
  if (!row) {
    return {
      ...base,
      status: 401,
      reason: 'unknown',
      explanation: `no token with the id ${id} exists in this tokenwarden: it was issued by another tokenwarden (another store or environment), or its store was reset`,
      hints: ['check that the client talks to the tokenwarden that issued the token', 'mint a new token here (tokenwarden token create …)'],
    };
  }
  const actor = await store.findActorById(row.actor_id);
  const bindingRow = row.binding_id ? bindings.find((b) => b.id === row.binding_id) : undefined;
  const binding = row.binding_id ? (bindingRow?.name ?? row.binding_id) : null;
  const held = actor ? new Set(await store.scopesOfActor(row.actor_id)) : new Set<string>();
  const scopes = JSON.parse(row.scopes) as string[];
  const state = tokenState(row, now);
  const facts: NonNullable<Diagnosis['token']> = {
    id: row.id,
    name: row.name,
    actor: actor?.name ?? row.actor_id,
    actorDisabled: !!actor?.disabled,
    state,
    scopes,
    effectiveScopes: scopes.filter((s) => held.has(s)),
    createdAt: iso(row.created_at)!,
    expiresAt: iso(row.expires_at)!,
    revokedAt: iso(row.revoked_at),
    revokedBy: row.revoked_by,
    revokeReason: row.revoke_reason,
    bindingId: row.binding_id,
    lastUsedAt: iso(row.last_used_at),
  };
  const who = `token ${row.id} ("${row.name}" of ${facts.actor})`;

  if (trace.wrongSecret) {
    return {
      ...base,
      status: 401,
      reason: 'unknown',
      token: facts,
      explanation: `the id belongs to ${who}, but the secret part does not match it: the token was altered, or it is a different token that reuses the id`,
      hints: ['copy the token again from where it was delivered; if it may have leaked, revoke it (tokenwarden token revoke ' + row.id + ')'],
    };
  }
  if (!verdict.ok && verdict.reason === 'revoked') {
    const successor = /^replaced by ([0-9A-Za-z]{12})$/.exec(row.revoke_reason ?? '')?.[1];
    return {
      ...base,
      status: 401,
      reason: 'revoked',
      token: facts,
      explanation: `${who} was revoked on ${facts.revokedAt} by ${row.revoked_by ?? 'an unknown actor'}${row.revoke_reason ? ` (reason: ${row.revoke_reason})` : ''}`,
      hints: [
        successor ? `its successor is token ${successor}: give the client that one` : 'a revoked token never works again: mint a new one (tokenwarden token create …)',
        ...(binding ? [revokedBindingHint(binding, bindingRow, row.id)] : []),
      ],
    };
  }
  if (!verdict.ok && verdict.reason === 'expired') {
    return {
      ...base,
      status: 401,
      reason: 'expired',
      token: facts,
      explanation: `${who} expired on ${facts.expiresAt}, ${formatDuration(now - row.expires_at)} ago`,
      hints: binding
        ? [`binding ${binding} delivers it and should have rotated it; see tokenwarden binding show ${binding}`]
        : [`replace it with a fresh one: tokenwarden token replace ${row.id} (or let a binding deliver and rotate it)`],
    };
  }
  if (!verdict.ok) {
    return {
      ...base,
      status: 401,
      reason: 'disabled',
      token: facts,
      explanation: `the identity ${facts.actor} is disabled or deleted, so all its tokens are refused, including ${who}`,
      hints: [`enable it again (tokenwarden actor update ${facts.actor} --enable) if that was a mistake`],
    };
  }

  if (required.length) {
    const lacking = [...hasScopes(verdict.identity, required, satisfy)];
    if (lacking.length) {
      const roles = await store.listRoles();
      const rolesGranting = Object.fromEntries(
        lacking.map((s) => [s, roles.filter((r) => (JSON.parse(r.scopes) as string[]).includes(s)).map((r) => r.name)]),
      );
      const dropped = lacking.filter((s) => scopes.includes(s));
      const parts = lacking.map((s) => {
        const granting = rolesGranting[s]!;
        const roleText = granting.length ? `the role${granting.length > 1 ? 's' : ''} ${granting.join(', ')} grant${granting.length > 1 ? '' : 's'} it` : 'no role grants it yet';
        return dropped.includes(s)
          ? `"${s}" is on the token but ${facts.actor} no longer holds it (${roleText})`
          : `the token was minted without "${s}" (${roleText})`;
      });
      return {
        ...base,
        status: 403,
        reason: 'insufficient_scope',
        token: facts,
        scopes: { required, satisfy, missing: lacking, rolesGranting, droppedFromIdentity: dropped },
        explanation: `${who} is valid but lacks ${satisfy === 'any' ? 'every one of' : ''} the required scope${lacking.length > 1 ? 's' : ''}: ${parts.join('; ')}`.replace('  ', ' '),
        hints: [
          ...(dropped.length ? [`grant ${facts.actor} a role holding ${dropped.join(', ')} again (tokenwarden actor update ${facts.actor} --role …)`] : []),
          ...(lacking.length > dropped.length
            ? [`mint a token with ${lacking.filter((s) => !dropped.includes(s)).map((s) => `--scope ${s}`).join(' ')} for ${facts.actor} (the identity must hold the scope first)`]
            : []),
        ],
      };
    }
  }
  const left = row.expires_at - now;
  return {
    ...base,
    status: 200,
    reason: 'ok',
    token: facts,
    ...(required.length ? { scopes: { required, satisfy, missing: [], rolesGranting: {}, droppedFromIdentity: [] } } : {}),
    explanation: `${who} is valid${required.length ? ` and holds ${satisfy === 'any' ? 'one of ' : ''}${required.join(' ')}` : ''}; it expires on ${facts.expiresAt} (in ${formatDuration(left)})`,
    hints: left < 7 * 86_400_000 && !row.binding_id ? [`it expires soon and no binding rotates it: tokenwarden token replace ${row.id}`] : [],
  };
}

function deliversFile(b: BindingTable, file: string): boolean {
  const sinks = [...((JSON.parse(b.spec) as { sinks?: { kind: string; path?: string }[] }).sinks ?? []), ...(JSON.parse(b.delivered) as { kind: string; path?: string }[])];
  return sinks.some((sk) => sk.kind === 'file' && sk.path === file);
}

/**
 * What to do about a revoked token a binding delivered: the binding heals by itself (it is told of
 * the revocation and re-delivers within seconds), so either it already did — and the consumer did
 * not re-read — or it is healing now, or it is stuck and `binding rotate` is the fix.
 */
function revokedBindingHint(name: string, b: BindingTable | undefined, tokenId: string): string {
  if (b && b.token_id !== null && b.token_id !== tokenId) {
    return `binding ${name} has since delivered token ${b.token_id}; the consumer still holds the revoked one: check that it re-reads its Secret or file (or restart it)`;
  }
  if (b && (b.state === 'failing' || b.state === 'gone')) {
    return `binding ${name} still delivers this revoked token and its last attempt failed (${b.last_error ?? 'see its history'}): fix that, then run tokenwarden binding rotate ${name}`;
  }
  return `binding ${name} delivered it and is healing: it re-delivers a fresh token within seconds (tokenwarden binding show ${name}); if it does not, run tokenwarden binding rotate ${name}`;
}
