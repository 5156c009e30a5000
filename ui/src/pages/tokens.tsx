import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { type Actor, ApiError, type CreatedToken, type Scope, type Token, type TokenState, api, query } from '../api.js';
import type { Session } from '../app.js';
import { CheckboxGroup, Chips, Dialog, DialogButtons, ErrorNotice, Field, TextField, Time, focusFirstError, showFieldErrors, useAction } from '../components/ui.js';
import { client, fromNow, when } from '../format.js';
import { EXPIRY_WARNING_MS, PERMISSIONS, parseDuration } from '../rules.js';

type Open =
  | { kind: 'create' }
  | { kind: 'shown'; token: CreatedToken; replaced?: Token }
  | { kind: 'revoke'; token: Token }
  | { kind: 'replace'; token: Token }
  | null;

export function TokensPage({ session }: { session: Session }) {
  const canSeeActors = [PERMISSIONS.adminToken, PERMISSIONS.actorManage, PERMISSIONS.auditRead].some(session.holds);
  const [state, setState] = useState<'' | TokenState>('active');
  const [actor, setActor] = useState('');
  const [search, setSearch] = useState('');
  const [searchApplied, setSearchApplied] = useState('');
  const [tokens, setTokens] = useState<Token[] | null>(null);
  const [actors, setActors] = useState<Actor[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [open, setOpen] = useState<Open>(null);
  const [status, setStatus] = useState('');
  const [reloads, setReloads] = useState(0);
  const reload = () => setReloads((n) => n + 1);

  // The search box filters as you type, without a request per keystroke.
  useEffect(() => {
    const t = setTimeout(() => setSearchApplied(search.trim()), 250);
    return () => clearTimeout(t);
  }, [search]);

  useEffect(() => {
    let live = true;
    api<{ items: Token[] }>('GET', `/tokens${query({ state, actor, search: searchApplied, limit: 1000 })}`).then(
      (r) => live && (setTokens(r.items), setError(null)),
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [state, actor, searchApplied, reloads]);

  useEffect(() => {
    if (canSeeActors) api<{ items: Actor[] }>('GET', '/actors').then((r) => setActors(r.items), setError);
  }, [canSeeActors, reloads]);

  return (
    <section aria-labelledby="tokens-title">
      <div class="page-head">
        <h1 id="tokens-title" tabIndex={-1}>
          Tokens
        </h1>
        <button type="button" onClick={() => setOpen({ kind: 'create' })}>
          Create token
        </button>
      </div>

      <form class="filters" role="search" aria-label="Filter tokens" onSubmit={(e) => (e.preventDefault(), setSearchApplied(search.trim()))}>
        <div class="field">
          <label for="filter-state">State</label>
          <select id="filter-state" value={state} onChange={(e) => setState(e.currentTarget.value as TokenState | '')}>
            <option value="active">Active</option>
            <option value="expired">Expired</option>
            <option value="revoked">Revoked</option>
            <option value="">Any state</option>
          </select>
        </div>
        {canSeeActors && (
          <div class="field">
            <label for="filter-actor">Identity</label>
            <select id="filter-actor" value={actor} onChange={(e) => setActor(e.currentTarget.value)}>
              <option value="">Everyone</option>
              {actors.map((a) => (
                <option key={a.id} value={a.name}>
                  {a.name}
                </option>
              ))}
            </select>
          </div>
        )}
        <div class="field grow">
          <label for="filter-search">Search</label>
          <input
            id="filter-search"
            type="search"
            value={search}
            placeholder="name or id"
            onInput={(e) => setSearch(e.currentTarget.value)}
          />
        </div>
      </form>

      <p class="sr-only" role="status">
        {status}
      </p>
      <ErrorNotice error={error} />
      {tokens === null && !error && <p class="muted">Loading tokens…</p>}
      {tokens && <TokenTable tokens={tokens} onRevoke={(t) => setOpen({ kind: 'revoke', token: t })} onReplace={(t) => setOpen({ kind: 'replace', token: t })} />}

      {open?.kind === 'create' && (
        <CreateTokenDialog
          session={session}
          actors={actors}
          onClose={() => setOpen(null)}
          onCreated={(t) => {
            setOpen({ kind: 'shown', token: t });
            reload();
          }}
        />
      )}
      {open?.kind === 'shown' && (
        <ShownOnceDialog
          created={open.token}
          replaced={open.replaced}
          onClose={() => {
            // Dropping the state drops the only copy of the secret the page had.
            setOpen(null);
            setStatus(`Token ${open.token.name} created; its secret is no longer shown.`);
          }}
        />
      )}
      {open?.kind === 'revoke' && (
        <RevokeDialog
          token={open.token}
          onClose={() => setOpen(null)}
          onRevoked={(t) => {
            setOpen(null);
            setStatus(`Token ${t.name} (${t.id}) revoked.`);
            reload();
          }}
        />
      )}
      {open?.kind === 'replace' && (
        <ReplaceDialog
          token={open.token}
          onClose={() => setOpen(null)}
          onReplaced={(t) => {
            setOpen({ kind: 'shown', token: t, replaced: open.token });
            reload();
          }}
        />
      )}
    </section>
  );
}

function TokenTable(props: { tokens: Token[]; onRevoke: (t: Token) => void; onReplace: (t: Token) => void }) {
  if (!props.tokens.length) return <p class="empty">No tokens match these filters.</p>;
  const now = Date.now();
  return (
    <div class="table-wrap">
      <table class="data" aria-describedby="tokens-caption">
        <caption id="tokens-caption">
          {props.tokens.length} token{props.tokens.length === 1 ? '' : 's'}; those expiring within {Math.round(EXPIRY_WARNING_MS / 86_400_000)} days are highlighted
        </caption>
        <thead>
          <tr>
            <th scope="col">Token</th>
            <th scope="col">Owner</th>
            <th scope="col">Scopes</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">Last use</th>
            <th scope="col">State</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {props.tokens.map((t) => {
            const left = Date.parse(t.expiresAt) - now;
            const soon = t.state === 'active' && left < EXPIRY_WARNING_MS;
            return (
              <tr key={t.id} data-token-id={t.id}>
                <th scope="row">
                  <span class="token-name">{t.name}</span>
                  <code class="token-id">{t.id}</code>
                </th>
                <td class="nowrap">{t.actor}</td>
                <td>
                  <Chips values={t.scopes} />
                </td>
                <td>
                  <Time iso={t.createdAt} />
                  {t.createdBy && <div class="sub">by {t.createdBy}</div>}
                </td>
                <td class={soon ? 'expiring' : undefined}>
                  {t.state === 'revoked' ? (
                    <span class="muted" title={when(t.expiresAt)}>
                      {fromNow(t.expiresAt)}
                    </span>
                  ) : (
                    <>
                      <time dateTime={t.expiresAt} title={when(t.expiresAt)}>
                        {fromNow(t.expiresAt)}
                      </time>
                      {soon && <div class="sub warn-text">expires soon</div>}
                    </>
                  )}
                </td>
                <td>
                  {t.lastUsed ? (
                    <>
                      <Time iso={t.lastUsed.at} />
                      <div class="sub">
                        {t.lastUsed.ip ?? 'unknown address'} · <span title={t.lastUsed.userAgent ?? undefined}>{client(t.lastUsed.userAgent)}</span>
                      </div>
                    </>
                  ) : (
                    <span class="muted">never used</span>
                  )}
                </td>
                <td>
                  <span class={`state state-${t.state}`}>{t.state}</span>
                  {t.revokedBy && <div class="sub">by {t.revokedBy}</div>}
                </td>
                <td class="actions">
                  {t.state === 'active' && (
                    <>
                      <button type="button" class="secondary small" aria-label={`Replace token ${t.name} (${t.id})`} onClick={() => props.onReplace(t)}>
                        Replace
                      </button>
                      <button type="button" class="danger small" aria-label={`Revoke token ${t.name} (${t.id})`} onClick={() => props.onRevoke(t)}>
                        Revoke
                      </button>
                    </>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

const PRESETS: [string, string][] = [
  ['1h', '1 hour'],
  ['1d', '1 day'],
  ['7d', '7 days'],
  ['30d', '30 days'],
  ['90d', '90 days'],
  ['180d', '180 days'],
  ['365d', '365 days'],
];

function CreateTokenDialog(props: { session: Session; actors: Actor[]; onClose: () => void; onCreated: (t: CreatedToken) => void }) {
  const { session } = props;
  const self = session.whoami.actor;
  const isAdmin = session.holds(PERMISSIONS.adminToken);
  const maxMs = session.policy.tokens.maxLifetime.seconds * 1000;
  const defaultText = session.policy.tokens.defaultLifetime.text;
  const presets = PRESETS.filter(([v]) => parseDuration(v)! <= maxMs);
  const [owner, setOwner] = useState(self);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>([]);
  const [expiry, setExpiry] = useState(presets.some(([v]) => v === defaultText) ? defaultText : 'custom');
  const [custom, setCustom] = useState(defaultText);
  const [grantable, setGrantable] = useState<string[] | null>(null);
  const [descriptions, setDescriptions] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string | undefined>>({});
  const { busy, failure, setFailure, run } = useAction();

  useEffect(() => {
    api<{ items: Scope[] }>('GET', '/scopes').then((r) => setDescriptions(Object.fromEntries(r.items.map((s) => [s.name, s.description]))), () => {});
  }, []);
  // What may go on the token: what the owner is granted, and, without admin:token, only what your own token holds.
  useEffect(() => {
    setGrantable(null);
    api<Actor>('GET', `/actors/${encodeURIComponent(owner)}`).then(
      (a) => {
        const mine = new Set(session.whoami.scopes);
        const list = a.effectiveScopes.filter((s) => isAdmin || mine.has(s));
        setGrantable(list);
        setScopes((prev) => prev.filter((s) => list.includes(s)));
      },
      (e) => {
        setGrantable([]);
        setFailure(e);
      },
    );
  }, [owner]);

  const order: [string, string][] = [
    ['actor', 'tok-owner'],
    ['name', 'tok-name'],
    ['scopes', 'tok-scopes'],
    ['expiresIn', expiry === 'custom' ? 'tok-custom' : 'tok-expiry'],
  ];

  const validate = (): Record<string, string | undefined> => {
    const e: Record<string, string | undefined> = {};
    if (!name.trim()) e.name = 'Give the token a name, e.g. "prometheus-scrape".';
    else if (name.trim().length > 200) e.name = 'The name is at most 200 characters.';
    if (!scopes.length) e.scopes = 'Pick at least one scope.';
    const text = expiry === 'custom' ? custom.trim() : expiry;
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0) e.expiresIn = 'Write a lifetime such as "45d", "12h" or "30m".';
    else if (ms > maxMs) e.expiresIn = `The policy allows at most ${session.policy.tokens.maxLifetime.text}; ask for a shorter lifetime.`;
    return e;
  };

  const submit = async (ev: Event) => {
    ev.preventDefault();
    setFailure(null);
    const found = validate();
    setErrors(found);
    if (Object.values(found).some(Boolean)) return focusFirstError(order, found);
    await run(
      async () => {
        const created = await api<CreatedToken>('POST', '/tokens', {
          ...(owner !== self ? { actor: owner } : {}),
          name: name.trim(),
          scopes,
          expiresIn: expiry === 'custom' ? custom.trim() : expiry,
        });
        props.onCreated(created);
      },
      (err) => showFieldErrors(err, order, setErrors),
    );
  };

  const owners = useMemo(() => {
    const names = props.actors.filter((a) => !a.disabled).map((a) => a.name);
    return names.includes(self) ? names : [self, ...names];
  }, [props.actors]);

  return (
    <Dialog title="Create a token" onClose={props.onClose} wide>
      <form onSubmit={submit} noValidate>
        {isAdmin ? (
          <Field id="tok-owner" label="Identity" error={errors.actor} hint="You hold admin:token, so you may mint for any identity, within the scopes it is granted.">
            {(describedBy, invalid) => (
              <select id="tok-owner" value={owner} aria-describedby={describedBy} aria-invalid={invalid || undefined} onChange={(e) => setOwner(e.currentTarget.value)}>
                {owners.map((n) => (
                  <option key={n} value={n}>
                    {n}
                    {n === self ? ' (you)' : ''}
                  </option>
                ))}
              </select>
            )}
          </Field>
        ) : (
          <p class="hint">
            The token will belong to <strong>{self}</strong>, with at most the scopes your own token holds.
          </p>
        )}
        <TextField id="tok-name" label="Name" value={name} onInput={setName} error={errors.name} autoFocus placeholder="prometheus-scrape" hint="Unique among the identity's live tokens." />
        <CheckboxGroup
          id="tok-scopes"
          legend="Scopes"
          options={(grantable ?? []).map((s) => ({ value: s, label: <code>{s}</code>, description: descriptions[s] }))}
          selected={scopes}
          onChange={setScopes}
          error={errors.scopes}
          empty={grantable === null ? 'Loading the scopes you may grant…' : `${owner} is granted no scope you may put on a token; assign it a role first.`}
          hint="Only scopes this identity is granted and you may grant are offered. Pick the fewest that do the job."
        />
        <div class="row">
          <Field id="tok-expiry" label="Expires after" error={expiry === 'custom' ? undefined : errors.expiresIn} hint={`Policy maximum: ${session.policy.tokens.maxLifetime.text}.`}>
            {(describedBy, invalid) => (
              <select id="tok-expiry" value={expiry} aria-describedby={describedBy} aria-invalid={invalid || undefined} onChange={(e) => setExpiry(e.currentTarget.value)}>
                {presets.map(([v, label]) => (
                  <option key={v} value={v}>
                    {label}
                  </option>
                ))}
                <option value="custom">Custom…</option>
              </select>
            )}
          </Field>
          {expiry === 'custom' && (
            <TextField id="tok-custom" label="Custom lifetime" value={custom} onInput={setCustom} error={errors.expiresIn} placeholder="45d" hint='e.g. "45d", "12h", "30m"' />
          )}
        </div>
        <ErrorNotice error={failure} />
        <DialogButtons onCancel={props.onClose} busy={busy} label="Create token" busyLabel="Creating…" />
      </form>
    </Dialog>
  );
}

/** The one time the secret is on screen. Closing the dialog drops it from the page for good. */
function ShownOnceDialog(props: { created: CreatedToken; replaced?: Token; onClose: () => void }) {
  const [copied, setCopied] = useState('');
  const secretRef = useRef<HTMLElement>(null);
  const t = props.created;

  const selectSecret = () => {
    const el = secretRef.current;
    if (!el) return;
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel?.removeAllRanges();
    sel?.addRange(range);
  };

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(t.token);
      setCopied('Copied to the clipboard.');
    } catch {
      // No clipboard permission (e.g. an insecure origin): leave it selected for Ctrl+C.
      selectSecret();
      setCopied('The browser refused the clipboard; the token is selected: press Ctrl+C (⌘C) to copy it.');
    }
  };

  return (
    <Dialog title={props.replaced ? 'Copy the successor token now' : 'Copy your new token now'} onClose={props.onClose} wide alert>
      <p class="warning" id="once-warning">
        <strong>This is the only time this token is shown.</strong> tokenwarden keeps only a hash of it. If you lose it, replace the token.
      </p>
      <dl class="facts">
        <dt>Name</dt>
        <dd>{t.name}</dd>
        <dt>Identity</dt>
        <dd>{t.actor}</dd>
        <dt>Scopes</dt>
        <dd>{t.scopes.join(' ')}</dd>
        <dt>Expires</dt>
        <dd>
          {when(t.expiresAt)} ({fromNow(t.expiresAt)})
        </dd>
        {props.replaced && (
          <>
            <dt>Replaces</dt>
            <dd>
              <code>{props.replaced.id}</code>
            </dd>
          </>
        )}
      </dl>
      <div class="secret-box">
        <span class="sr-only" id="secret-label">
          The new token
        </span>
        <code id="new-token" class="secret" ref={secretRef} tabIndex={0} aria-labelledby="secret-label" aria-describedby="once-warning" onFocus={selectSecret}>
          {t.token}
        </code>
        <button type="button" onClick={copy} autoFocus>
          Copy token
        </button>
      </div>
      <p class="hint" role="status">
        {copied}
      </p>
      <div class="buttons">
        <button type="button" class="secondary" onClick={props.onClose}>
          I have stored it, close
        </button>
      </div>
    </Dialog>
  );
}

function RevokeDialog(props: { token: Token; onClose: () => void; onRevoked: (t: Token) => void }) {
  const [reason, setReason] = useState('');
  // A token a binding delivers, or the one this session uses, is refused (409, field "force") until confirmed.
  const [force, setForce] = useState(false);
  const { busy, failure, run } = useAction();
  const t = props.token;
  const submit = (e: Event) => {
    e.preventDefault();
    const body = { ...(reason.trim() ? { reason: reason.trim() } : {}), ...(force ? { force: true } : {}) };
    return run(
      async () => props.onRevoked(await api<Token>('POST', `/tokens/${encodeURIComponent(t.id)}/revoke`, body)),
      (err) => {
        if (err instanceof ApiError && err.status === 409 && err.problem.field === 'force') setForce(true);
        return false;
      },
    );
  };
  return (
    <Dialog title={`Revoke token “${t.name}”?`} onClose={props.onClose} alert>
      <form onSubmit={submit} noValidate>
        <p>
          Token <code>{t.id}</code> of <strong>{t.actor}</strong> stops working at once: every client still sending it gets 401. This cannot be undone.
        </p>
        {t.lastUsed && (
          <p class="hint">
            It was last used <Time iso={t.lastUsed.at} /> from {t.lastUsed.ip ?? 'an unknown address'} ({client(t.lastUsed.userAgent)}).
          </p>
        )}
        <TextField id="revoke-reason" label="Reason (optional, goes to the audit log)" value={reason} onInput={setReason} placeholder="unused for 90 days" />
        <ErrorNotice error={failure} />
        <DialogButtons onCancel={props.onClose} busy={busy} label={force ? 'Revoke anyway' : 'Revoke token'} busyLabel="Revoking…" danger focusCancel />
      </form>
    </Dialog>
  );
}

function ReplaceDialog(props: { token: Token; onClose: () => void; onReplaced: (t: CreatedToken) => void }) {
  const [grace, setGrace] = useState('0');
  const { busy, failure, run } = useAction();
  const t = props.token;
  const submit = (e: Event) => {
    e.preventDefault();
    return run(async () => props.onReplaced(await api<CreatedToken>('POST', `/tokens/${encodeURIComponent(t.id)}/replace`, grace === '0' ? {} : { grace })));
  };
  return (
    <Dialog title={`Replace token “${t.name}”`} onClose={props.onClose}>
      <form onSubmit={submit} noValidate>
        <p>
          Mints a successor for <strong>{t.actor}</strong> with the same name and scopes (<code>{t.scopes.join(' ')}</code>) and a fresh lifetime. The new token is shown once.
        </p>
        <Field id="replace-grace" label="The old token" hint="A grace period lets clients switch over before the old token stops working.">
          {(describedBy) => (
            <select id="replace-grace" value={grace} aria-describedby={describedBy} onChange={(e) => setGrace(e.currentTarget.value)}>
              <option value="0">is revoked at once</option>
              <option value="1h">keeps working for 1 hour</option>
              <option value="1d">keeps working for 1 day</option>
              <option value="7d">keeps working for 7 days</option>
            </select>
          )}
        </Field>
        <ErrorNotice error={failure} />
        <DialogButtons onCancel={props.onClose} busy={busy} label="Mint successor" busyLabel="Replacing…" />
      </form>
    </Dialog>
  );
}
