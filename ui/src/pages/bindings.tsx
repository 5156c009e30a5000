import { useEffect, useState } from 'preact/hooks';
import { type Binding, type Rotation, api } from '../api.js';
import type { Session } from '../app.js';
import { Chips, Dialog, DialogButtons, ErrorNotice, Time, useAction } from '../components/ui.js';
import { PERMISSIONS } from '../rules.js';

type Sink = Binding['sinks'][number];

function describeSink(s: Sink): string {
  return s.kind === 'file' ? `file ${s.path}` : `Secret ${s.namespace}/${s.name}#${s.key ?? 'token'}`;
}

/** The last rotation's outcome: one under way (its step, and its last error while it retries), else the last error, else the last success. */
function lastOutcome(b: Binding): { outcome: string; at: string | null; error: string | null } | null {
  if (b.inFlight) return { outcome: `${b.inFlight.lastError ? 'retrying' : 'in progress'}: ${b.inFlight.step}`, at: b.inFlight.startedAt, error: b.inFlight.lastError };
  if (b.lastError) return { outcome: 'failed', at: b.updatedAt, error: b.lastError };
  // Finished, but the old token died before the new one was confirmed: consumers may have been refused.
  if (b.lastOutcome?.endsWith('-before-confirm')) return { outcome: b.lastOutcome, at: b.lastSuccessAt, error: 'the old token expired or was revoked before the new one was confirmed' };
  if (b.lastSuccessAt) return { outcome: 'succeeded', at: b.lastSuccessAt, error: null };
  return null;
}

export function BindingsPage({ session }: { session: Session }) {
  const canRotate = session.holds(PERMISSIONS.bindingManage);
  const [rows, setRows] = useState<Binding[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [confirm, setConfirm] = useState<Binding | null>(null);
  const [history, setHistory] = useState<Binding | null>(null);
  const [status, setStatus] = useState('');
  const [reloads, setReloads] = useState(0);

  useEffect(() => {
    api<{ items: Binding[] }>('GET', '/bindings').then(
      (r) => {
        setRows(r.items);
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
                <th scope="col">Next attempt</th>
                <th scope="col">Last rotation</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((b) => {
                const last = lastOutcome(b);
                return (
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
                        {b.sinks.map((s, i) => {
                          const st = b.sinkStates?.[i];
                          return (
                            <li key={describeSink(s)} data-sink-status={st?.status ?? 'unknown'}>
                              <code>{describeSink(s)}</code>{' '}
                              {st && st.status !== 'unknown' && (
                                <span class={`outcome outcome-${st.status === 'ok' ? 'ok' : 'failed'}`}>{st.status === 'ok' ? 'holds a valid token' : st.status}</span>
                              )}
                              {st?.detail && st.status !== 'ok' && <div class="sub error-text">{st.detail}</div>}
                            </li>
                          );
                        })}
                      </ul>
                    </td>
                    <td>
                      <Time iso={b.expiresAt} />
                    </td>
                    <td>
                      {b.retrying ? (
                        <>
                          retry <Time iso={b.nextAttemptAt} fallback="soon" />
                        </>
                      ) : (
                        <Time iso={b.nextAttemptAt ?? b.nextRotationAt} fallback="not scheduled" />
                      )}
                    </td>
                    <td>
                      {last ? (
                        <>
                          <span class={`outcome outcome-${last.error ? 'failed' : 'ok'}`}>{last.outcome}</span> <Time iso={last.at} fallback="" />
                          {last.error && <div class="sub error-text">{last.error}</div>}
                        </>
                      ) : (
                        <span class="muted">none yet</span>
                      )}
                      <div class="sub">{b.rotations} rotation{b.rotations === 1 ? '' : 's'} so far</div>
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
                );
              })}
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

function RotateDialog(props: { binding: Binding; onClose: () => void; onDone: () => void }) {
  const { busy, failure, run } = useAction();
  const rotate = () =>
    run(async () => {
      await api('POST', `/bindings/${encodeURIComponent(props.binding.name)}/rotate`, {});
      props.onDone();
    });
  return (
    <Dialog title={`Rotate “${props.binding.name}” now?`} onClose={props.onClose}>
      <p>
        tokenwarden mints a new token, delivers it to every sink, confirms it, and revokes the current one after the grace period. Consumers keep working throughout.
      </p>
      <ErrorNotice error={failure} />
      <DialogButtons onCancel={props.onClose} busy={busy} label="Rotate now" busyLabel="Starting…" focusCancel onAct={rotate} />
    </Dialog>
  );
}

/** What each rotation did, step by step: the record an operator checks after "did the rotation go through?". */
function HistoryDialog(props: { binding: Binding; onClose: () => void }) {
  const [items, setItems] = useState<Rotation[] | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  useEffect(() => {
    api<{ items: Rotation[] }>('GET', `/bindings/${encodeURIComponent(props.binding.name)}/history?limit=50`).then((r) => setItems(r.items), setFailure);
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
                    <span class={`outcome outcome-${r.step === 'abandoned' || r.lastError || (r.outcome && r.outcome !== 'success') ? 'failed' : 'ok'}`}>{r.outcome && r.outcome !== 'success' ? r.outcome : r.step}</span>
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
