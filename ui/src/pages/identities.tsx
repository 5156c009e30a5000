import { useEffect, useState } from 'preact/hooks';
import { type Actor, ApiError, type Role, api } from '../api.js';
import type { Session } from '../app.js';
import { CheckboxGroup, Chips, Dialog, DialogButtons, ErrorNotice, TextField, Time, focusFirstError, showFieldErrors, useAction } from '../components/ui.js';
import { ACTOR_NAME, PERMISSIONS, SERVICE_PREFIX } from '../rules.js';

type Open = { kind: 'create' } | { kind: 'roles'; actor: Actor } | null;

export function IdentitiesPage({ session }: { session: Session }) {
  const canList = [PERMISSIONS.adminToken, PERMISSIONS.actorManage, PERMISSIONS.auditRead].some(session.holds);
  const canManage = session.holds(PERMISSIONS.actorManage);
  const [actors, setActors] = useState<Actor[] | null>(null);
  const [roles, setRoles] = useState<Role[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [open, setOpen] = useState<Open>(null);
  const [status, setStatus] = useState('');
  const [reloads, setReloads] = useState(0);

  useEffect(() => {
    if (canList) api<{ items: Actor[] }>('GET', '/actors').then((r) => setActors(r.items), setError);
    api<{ items: Role[] }>('GET', '/roles').then((r) => setRoles(r.items), setError);
  }, [reloads]);

  const done = (message: string) => {
    setOpen(null);
    setStatus(message);
    setReloads((n) => n + 1);
  };

  return (
    <section aria-labelledby="identities-title">
      <div class="page-head">
        <h1 id="identities-title" tabIndex={-1}>
          Identities and roles
        </h1>
        {canManage && (
          <button type="button" onClick={() => setOpen({ kind: 'create' })}>
            Create identity
          </button>
        )}
      </div>
      <p class="sr-only" role="status">
        {status}
      </p>
      <ErrorNotice error={error} />

      <h2>Identities</h2>
      {!canList && <p class="empty">Listing identities needs actor.manage, admin:token or audit.read; your token holds none of them.</p>}
      {canList && actors === null && !error && <p class="muted">Loading identities…</p>}
      {actors && (
        <div class="table-wrap">
          <table class="data">
            <caption class="sr-only">Identities</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col">Roles</th>
                <th scope="col">Effective scopes</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
                {canManage && (
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {actors.map((a) => (
                <tr key={a.id} data-actor={a.name}>
                  <th scope="row">
                    {a.name}
                    {a.description && <div class="sub">{a.description}</div>}
                  </th>
                  <td>{a.kind}</td>
                  <td>
                    <Chips values={a.roles} />
                  </td>
                  <td>
                    <Chips values={a.effectiveScopes} />
                  </td>
                  <td>
                    <span class={`state state-${a.disabled ? 'revoked' : 'active'}`}>{a.disabled ? 'disabled' : 'enabled'}</span>
                  </td>
                  <td>
                    <Time iso={a.createdAt} />
                  </td>
                  {canManage && (
                    <td class="actions">
                      {!a.disabled && (
                        <button type="button" class="secondary small" aria-label={`Assign roles to ${a.name}`} onClick={() => setOpen({ kind: 'roles', actor: a })}>
                          Roles…
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>Roles</h2>
      <div class="table-wrap">
        <table class="data">
          <caption class="sr-only">Roles and the scopes they bundle</caption>
          <thead>
            <tr>
              <th scope="col">Role</th>
              <th scope="col">Description</th>
              <th scope="col">Scopes</th>
              <th scope="col">Origin</th>
            </tr>
          </thead>
          <tbody>
            {roles.map((r) => (
              <tr key={r.name}>
                <th scope="row" class="nowrap">
                  {r.name}
                </th>
                <td>{r.description}</td>
                <td>
                  <Chips values={r.scopes} />
                </td>
                <td>{r.builtin ? 'built-in' : 'custom'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      {open?.kind === 'create' && <CreateIdentityDialog roles={roles} onClose={() => setOpen(null)} onCreated={(a) => done(`Identity ${a.name} created.`)} />}
      {open?.kind === 'roles' && <RolesDialog actor={open.actor} roles={roles} onClose={() => setOpen(null)} onSaved={(a) => done(`Roles of ${a.name} saved.`)} />}
    </section>
  );
}

/** The server's rule, checked here first so the form answers at once; the server checks again. */
function nameProblem(name: string, kind: 'user' | 'service'): string | undefined {
  if (!name) return `Give the identity a name${kind === 'service' ? `, e.g. "${SERVICE_PREFIX}prometheus"` : ''}.`;
  if (kind === 'service' && !name.startsWith(SERVICE_PREFIX)) return `A service identity's name must start with "${SERVICE_PREFIX}", e.g. "${SERVICE_PREFIX}${name}".`;
  if (kind === 'user' && name.startsWith(SERVICE_PREFIX)) return `Names starting with "${SERVICE_PREFIX}" are reserved for service identities.`;
  if (!ACTOR_NAME.test(name)) return 'Use lowercase letters, digits, ".", "_", "@" and "-", starting with a letter or digit.';
  return undefined;
}

function CreateIdentityDialog(props: { roles: Role[]; onClose: () => void; onCreated: (a: Actor) => void }) {
  const [kind, setKind] = useState<'service' | 'user'>('service');
  const [name, setName] = useState(SERVICE_PREFIX);
  const [description, setDescription] = useState('');
  const [roles, setRoles] = useState<string[]>([]);
  const [errors, setErrors] = useState<Record<string, string | undefined>>({});
  const { busy, failure, setFailure, run } = useAction();

  const order: [string, string][] = [
    ['kind', 'id-kind-service'],
    ['name', 'id-name'],
    ['description', 'id-description'],
    ['roles', 'id-roles'],
  ];

  const submit = async (e: Event) => {
    e.preventDefault();
    setFailure(null);
    const found = { name: nameProblem(name.trim(), kind) };
    setErrors(found);
    if (found.name) return focusFirstError(order, found);
    await run(
      async () => props.onCreated(await api<Actor>('POST', '/actors', { name: name.trim(), kind, roles, ...(description.trim() ? { description: description.trim() } : {}) })),
      (err) => showFieldErrors(err, order, setErrors),
    );
  };

  return (
    <Dialog title="Create an identity" onClose={props.onClose} wide>
      <form onSubmit={submit} noValidate>
        <fieldset class="field radios">
          <legend>Kind</legend>
          <label>
            <input
              id="id-kind-service"
              type="radio"
              name="kind"
              value="service"
              checked={kind === 'service'}
              onChange={() => {
                setKind('service');
                if (!name) setName(SERVICE_PREFIX);
              }}
            />{' '}
            Service (a bot, a scraper, a CI job)
          </label>
          <label>
            <input
              type="radio"
              name="kind"
              value="user"
              checked={kind === 'user'}
              onChange={() => {
                setKind('user');
                if (name === SERVICE_PREFIX) setName('');
              }}
            />{' '}
            User (a person)
          </label>
        </fieldset>
        <TextField
          id="id-name"
          label="Name"
          value={name}
          onInput={(v) => {
            setName(v);
            if (errors.name) setErrors({ ...errors, name: undefined });
          }}
          error={errors.name}
          autoFocus
          hint={
            kind === 'service' ? (
              <>
                Service identity names start with <code>{SERVICE_PREFIX}</code>, e.g. <code>{SERVICE_PREFIX}prometheus</code>. Lowercase letters, digits, ".", "_", "@" and "-".
              </>
            ) : (
              <>Lowercase letters, digits, ".", "_", "@" and "-"; an e-mail address works. Not starting with {SERVICE_PREFIX}.</>
            )
          }
        />
        <TextField id="id-description" label="Description (optional)" value={description} onInput={setDescription} error={errors.description} spellcheck />
        <CheckboxGroup
          id="id-roles"
          legend="Roles"
          options={props.roles.map((r) => ({ value: r.name, label: r.name, description: `${r.description} (${r.scopes.join(' ')})` }))}
          selected={roles}
          onChange={setRoles}
          error={errors.roles}
          hint="An identity holds the scopes of its roles. metrics-read is enough for a Prometheus scrape."
        />
        <ErrorNotice error={failure} />
        <DialogButtons onCancel={props.onClose} busy={busy} label="Create identity" busyLabel="Creating…" />
      </form>
    </Dialog>
  );
}

function RolesDialog(props: { actor: Actor; roles: Role[]; onClose: () => void; onSaved: (a: Actor) => void }) {
  const [roles, setRoles] = useState<string[]>(props.actor.roles);
  const [error, setError] = useState<string | undefined>();
  const { busy, failure, run } = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    setError(undefined);
    return run(
      async () => props.onSaved(await api<Actor>('PATCH', `/actors/${encodeURIComponent(props.actor.name)}`, { roles })),
      (err) => {
        const field = err instanceof ApiError ? err.fieldErrors.roles : undefined;
        if (field) setError(field);
        return field !== undefined;
      },
    );
  };
  return (
    <Dialog title={`Roles of ${props.actor.name}`} onClose={props.onClose}>
      <form onSubmit={submit} noValidate>
        <CheckboxGroup
          id="roles-edit"
          legend="Roles"
          options={props.roles.map((r) => ({ value: r.name, label: r.name, description: `${r.description} (${r.scopes.join(' ')})` }))}
          selected={roles}
          onChange={setRoles}
          error={error}
          hint="The identity's tokens carry only scopes the identity still holds: removing a role takes its scopes away from them."
        />
        <ErrorNotice error={failure} />
        <DialogButtons onCancel={props.onClose} busy={busy} label="Save roles" busyLabel="Saving…" />
      </form>
    </Dialog>
  );
}
