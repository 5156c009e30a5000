import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
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

export function BindingsPage({ session }: { session: Session }) {
  const canRotate = session.holds(PERMISSIONS.bindingManage);
  const [rows, setRows] = useState<BindingRow[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [confirm, setConfirm] = useState<BindingRow | null>(null);
  const [history, setHistory] = useState<BindingRow | null>(null);
  const [status, setStatus] = useState('');
  const [reloads, setReloads] = useState(0);

  useEffect(() => {
    api<{ items: Json[] }>('GET', '/bindings').then(
      (r) => {
        setRows(r.items.map(toRow));
        setError(null);
      },
      (e) => setError(e),
    );
  }, [reloads]);

  return (
    <section aria-labelledby="bindings-title">
      <div class="page-head">
        <h1 id="bindings-title" tabIndex={-1}>
          Bindings
        </h1>
        <button type="button" class="secondary" onClick={() => setReloads((n) => n + 1)}>
          Refresh
        </button>
      </div>
      <p class="lead">A binding keeps a valid token of one identity in files or Kubernetes Secrets, and rotates it before it expires.</p>
      <p class="sr-only" role="status">
        {status}
      </p>
      {rows === null && !error && <p class="muted">Loading…</p>}
      <ErrorNotice error={error} />
      {rows?.length === 0 && <p class="empty">No bindings yet. Declare them under <code>bindings:</code> in the configuration file or with <code>tokenwarden binding create</code>.</p>}
      {rows && rows.length > 0 && (
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
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
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
                  <td class="actions">
                    <button type="button" class="secondary small" aria-label={`Rotation history of binding ${b.name}`} onClick={() => setHistory(b)}>
                      History
                    </button>
                    {canRotate && (
                      <button type="button" class="secondary small" aria-label={`Rotate binding ${b.name} now`} onClick={() => setConfirm(b)}>
                        Rotate now
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {history && <HistoryDialog binding={history} onClose={() => setHistory(null)} />}
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

/** One rotation as GET /api/v1/bindings/{name}/history returns it (newest first). */
interface RotationRow {
  seq: number;
  reason: string;
  step: string;
  oldTokenId: string | null;
  newTokenId: string | null;
  startedAt: string;
  deliveredAt: string | null;
  confirmedAt: string | null;
  finishedAt: string | null;
  attempts: number;
  lastError: string | null;
  note: string | null;
}

/** What each rotation did, step by step: the record an operator checks after "did the rotation go through?". */
function HistoryDialog(props: { binding: BindingRow; onClose: () => void }) {
  const [items, setItems] = useState<RotationRow[] | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  useEffect(() => {
    api<{ items: RotationRow[] }>('GET', `/bindings/${encodeURIComponent(props.binding.name)}/history?limit=50`).then((r) => setItems(r.items), setFailure);
  }, [props.binding.name]);
  return (
    <Dialog title={`Rotations of “${props.binding.name}”`} onClose={props.onClose} wide>
      <ErrorNotice error={failure} />
      {items === null && !failure && <p class="muted">Loading…</p>}
      {items?.length === 0 && <p class="empty">No rotation yet.</p>}
      {items && items.length > 0 && (
        <div class="table-wrap">
          <table class="data" data-testid="rotation-history">
            <caption class="sr-only">Rotations, newest first</caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Why</th>
                <th scope="col">Step</th>
                <th scope="col">Token</th>
                <th scope="col">Started</th>
                <th scope="col">Delivered</th>
                <th scope="col">Confirmed</th>
                <th scope="col">Finished</th>
              </tr>
            </thead>
            <tbody>
              {items.map((r) => (
                <tr key={r.seq} data-seq={r.seq}>
                  <th scope="row">{r.seq}</th>
                  <td>{r.reason}</td>
                  <td>
                    <span class={`outcome outcome-${r.step === 'abandoned' || r.lastError ? 'failed' : 'ok'}`}>{r.step}</span>
                    {r.attempts > 1 && <div class="sub">{r.attempts} attempts</div>}
                    {r.lastError && <div class="sub error-text">{r.lastError}</div>}
                    {r.note && <div class="sub">{r.note}</div>}
                  </td>
                  <td>
                    {r.oldTokenId ? <code class="token-id">{r.oldTokenId}</code> : <span class="muted">none</span>} → {r.newTokenId ? <code class="token-id">{r.newTokenId}</code> : <span class="muted">—</span>}
                  </td>
                  <td>
                    <Time iso={r.startedAt} />
                  </td>
                  <td>
                    <Time iso={r.deliveredAt} />
                  </td>
                  <td>
                    <Time iso={r.confirmedAt} />
                  </td>
                  <td>
                    <Time iso={r.finishedAt} fallback="under way" />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div class="buttons">
        <button type="button" class="secondary" onClick={props.onClose} autoFocus>
          Close
        </button>
      </div>
    </Dialog>
  );
}
