import { useEffect, useState } from 'preact/hooks';
import { ApiError, api } from '../api.js';
import type { Session } from '../app.js';
import { Chips, Dialog, ErrorNotice, Time } from '../components/ui.js';
import { PERMISSIONS } from '../rules.js';

/** One binding as the page shows it, read leniently from GET /api/v1/bindings. */
interface BindingRow {
  name: string;
  actor: string | null;
  scopes: string[];
  state: string;
  sinks: string[];
  tokenId: string | null;
  expiresAt: string | null;
  nextRotationAt: string | null;
  rotations: number | null;
  last: { outcome: string; at: string | null; error: string | null } | null;
}

type Json = Record<string, unknown>;
const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : typeof v === 'number' ? new Date(v).toISOString() : null);

function describeSink(s: unknown): string {
  if (typeof s === 'string') return s;
  const o = (s ?? {}) as Json;
  if (typeof o.describe === 'string') return o.describe;
  if (o.kind === 'file') return `file ${String(o.path)}`;
  if (o.kind === 'kubernetes-secret') return `Secret ${String(o.namespace)}/${String(o.name)}#${String(o.key ?? 'token')}`;
  return JSON.stringify(o);
}

/**
 * The last rotation's outcome: a rotation under way (its step, and its last error while it
 * retries), else the last attempt's error, else the last success.
 */
function lastOutcome(raw: Json): BindingRow['last'] {
  const inFlight = (raw.inFlight ?? null) as Json | null;
  if (inFlight) {
    const error = str(inFlight.lastError);
    return { outcome: `${error ? 'retrying' : 'in progress'}: ${String(inFlight.step)}`, at: str(inFlight.startedAt), error };
  }
  const last = (raw.lastRotation ?? null) as Json | null;
  if (last) return { outcome: String(last.outcome ?? last.step ?? 'unknown'), at: str(last.finishedAt ?? last.startedAt), error: str(last.lastError) };
  const lastError = str(raw.lastError);
  if (lastError) return { outcome: 'failed', at: str(raw.updatedAt), error: lastError };
  if (raw.lastSuccessAt) return { outcome: 'succeeded', at: str(raw.lastSuccessAt), error: null };
  return null;
}

function toRow(raw: Json): BindingRow {
  return {
    name: String(raw.name),
    actor: str(raw.actor),
    scopes: (Array.isArray(raw.scopes) ? raw.scopes : []) as string[],
    state: String(raw.state ?? 'unknown'),
    sinks: ((raw.sinks ?? []) as unknown[]).map(describeSink),
    tokenId: str(raw.tokenId),
    expiresAt: str(raw.expiresAt),
    nextRotationAt: str(raw.nextRotationAt),
    rotations: typeof raw.rotations === 'number' ? raw.rotations : null,
    last: lastOutcome(raw),
  };
}

type Availability = 'checking' | 'available' | 'missing';

export function BindingsPage({ session }: { session: Session }) {
  const canRotate = session.holds(PERMISSIONS.bindingManage);
  const [availability, setAvailability] = useState<Availability>('checking');
  const [rows, setRows] = useState<BindingRow[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [confirm, setConfirm] = useState<BindingRow | null>(null);
  const [status, setStatus] = useState('');
  const [reloads, setReloads] = useState(0);

  // Ask the API description first, so a server without bindings is not sent a request that can only fail.
  useEffect(() => {
    fetch('/api/v1/openapi.json', { credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : { paths: {} }))
      .then((doc: { paths?: Record<string, unknown> }) => setAvailability(doc.paths && '/api/v1/bindings' in doc.paths ? 'available' : 'missing'))
      .catch(() => setAvailability('available'));
  }, []);

  useEffect(() => {
    if (availability !== 'available') return;
    api<{ items: Json[] }>('GET', '/bindings').then(
      (r) => {
        setRows(r.items.map(toRow));
        setError(null);
      },
      (e) => {
        if (e instanceof ApiError && e.status === 404) setAvailability('missing');
        else setError(e);
      },
    );
  }, [availability, reloads]);

  return (
    <section aria-labelledby="bindings-title">
      <div class="page-head">
        <h1 id="bindings-title" tabIndex={-1}>
          Bindings
        </h1>
        {availability === 'available' && (
          <button type="button" class="secondary" onClick={() => setReloads((n) => n + 1)}>
            Refresh
          </button>
        )}
      </div>
      <p class="lead">A binding keeps a valid token of one identity in files or Kubernetes Secrets, and rotates it before it expires.</p>
      <p class="sr-only" role="status">
        {status}
      </p>
      {availability === 'checking' && <p class="muted">Loading…</p>}
      {availability === 'missing' && (
        <p class="empty" data-testid="bindings-unavailable">
          Bindings are not available on this server: it does not offer the /api/v1/bindings API.
        </p>
      )}
      <ErrorNotice error={error} />
      {availability === 'available' && rows?.length === 0 && <p class="empty">No bindings yet. Declare them under <code>bindings:</code> in the configuration file or with <code>tokenwarden binding create</code>.</p>}
      {availability === 'available' && rows && rows.length > 0 && (
        <div class="table-wrap">
          <table class="data">
            <caption class="sr-only">Bindings</caption>
            <thead>
              <tr>
                <th scope="col">Binding</th>
                <th scope="col">Identity and scopes</th>
                <th scope="col">State</th>
                <th scope="col">Sinks</th>
                <th scope="col">Token expires</th>
                <th scope="col">Next rotation</th>
                <th scope="col">Last rotation</th>
                {canRotate && (
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {rows.map((b) => (
                <tr key={b.name} data-binding={b.name}>
                  <th scope="row">
                    <span class="nowrap">{b.name}</span>
                    {b.tokenId && <code class="token-id">{b.tokenId}</code>}
                  </th>
                  <td>
                    {b.actor ?? '—'}
                    <Chips values={b.scopes} />
                  </td>
                  <td>
                    <span class={`state state-${b.state}`}>{b.state}</span>
                  </td>
                  <td>
                    <ul class="plain">
                      {b.sinks.map((s) => (
                        <li key={s}>
                          <code>{s}</code>
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td>
                    <Time iso={b.expiresAt} />
                  </td>
                  <td>
                    <Time iso={b.nextRotationAt} fallback="not scheduled" />
                  </td>
                  <td>
                    {b.last ? (
                      <>
                        <span class={`outcome outcome-${b.last.error ? 'failed' : 'ok'}`}>{b.last.outcome}</span> <Time iso={b.last.at} fallback="" />
                        {b.last.error && <div class="sub error-text">{b.last.error}</div>}
                      </>
                    ) : (
                      <span class="muted">none yet</span>
                    )}
                    {b.rotations !== null && <div class="sub">{b.rotations} rotation{b.rotations === 1 ? '' : 's'} so far</div>}
                  </td>
                  {canRotate && (
                    <td class="actions">
                      <button type="button" class="secondary small" aria-label={`Rotate binding ${b.name} now`} onClick={() => setConfirm(b)}>
                        Rotate now
                      </button>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {confirm && (
        <RotateDialog
          binding={confirm}
          onClose={() => setConfirm(null)}
          onDone={() => {
            setConfirm(null);
            setStatus(`Rotation of ${confirm.name} started.`);
            setReloads((n) => n + 1);
          }}
        />
      )}
    </section>
  );
}

function RotateDialog(props: { binding: BindingRow; onClose: () => void; onDone: () => void }) {
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const rotate = async () => {
    setBusy(true);
    setFailure(null);
    try {
      await api('POST', `/bindings/${encodeURIComponent(props.binding.name)}/rotate`, {});
      props.onDone();
    } catch (err) {
      setFailure(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Rotate “${props.binding.name}” now?`} onClose={props.onClose}>
      <p>
        tokenwarden mints a new token, delivers it to every sink, confirms it, and revokes the current one after the grace period. Consumers keep working throughout.
      </p>
      <ErrorNotice error={failure} />
      <div class="buttons">
        <button type="button" class="secondary" onClick={props.onClose} autoFocus>
          Cancel
        </button>
        <button type="button" onClick={rotate} disabled={busy}>
          {busy ? 'Starting…' : 'Rotate now'}
        </button>
      </div>
    </Dialog>
  );
}
