import { useEffect, useState } from 'preact/hooks';
import { type AuditEntry, api, query } from '../api.js';
import type { Session } from '../app.js';
import { ErrorNotice, Field } from '../components/ui.js';
import { when } from '../format.js';
import { PERMISSIONS } from '../rules.js';

const PAGE = 100;
const KNOWN_ACTIONS = ['token.', 'token.create', 'token.revoke', 'token.replace', 'actor.', 'actor.create', 'actor.update', 'actor.delete', 'role.', 'scope.create', 'binding.', 'system.bootstrap'];

interface Filter {
  actor: string;
  action: string;
  since: string;
  until: string;
}

/** <input type=datetime-local> speaks local wall time; the API wants RFC 3339. */
const toIso = (local: string): string | undefined => (local ? new Date(local).toISOString() : undefined);

export function AuditPage({ session }: { session: Session }) {
  const allowed = session.holds(PERMISSIONS.auditRead);
  const [draft, setDraft] = useState<Filter>({ actor: '', action: '', since: '', until: '' });
  const [filter, setFilter] = useState<Filter>(draft);
  const [items, setItems] = useState<AuditEntry[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [rangeError, setRangeError] = useState<string | undefined>();

  const load = async (f: Filter, before?: number) => {
    try {
      const r = await api<{ items: AuditEntry[] }>(
        'GET',
        `/audit${query({ actor: f.actor.trim(), action: f.action.trim(), since: toIso(f.since), until: toIso(f.until), limit: PAGE, before })}`,
      );
      setItems((prev) => (before && prev ? [...prev, ...r.items] : r.items));
      setMore(r.items.length === PAGE);
      setError(null);
    } catch (e) {
      setError(e);
    }
  };

  useEffect(() => {
    if (allowed) void load(filter);
  }, [filter]);

  const apply = (e: Event) => {
    e.preventDefault();
    if (draft.since && draft.until && Date.parse(draft.since) > Date.parse(draft.until)) {
      setRangeError('"From" must be before "until".');
      document.getElementById('audit-until')?.focus();
      return;
    }
    setRangeError(undefined);
    setItems(null);
    setFilter({ ...draft });
  };

  return (
    <section aria-labelledby="audit-title">
      <div class="page-head">
        <h1 id="audit-title" tabIndex={-1}>
          Audit log
        </h1>
      </div>
      <p class="lead">Every change, newest first: who, what, when and from where. Never a secret.</p>
      {!allowed && <p class="empty">Reading the audit log needs the scope audit.read, which your token does not hold.</p>}
      {allowed && (
        <>
          <form class="filters" role="search" aria-label="Filter the audit log" onSubmit={apply}>
            <div class="field">
              <label for="audit-actor">Actor</label>
              <input id="audit-actor" value={draft.actor} placeholder="admin" autoComplete="off" onInput={(e) => setDraft({ ...draft, actor: e.currentTarget.value })} />
            </div>
            <div class="field">
              <label for="audit-action">Action</label>
              <input
                id="audit-action"
                list="audit-actions"
                value={draft.action}
                placeholder="token.revoke"
                autoComplete="off"
                aria-describedby="audit-action-hint"
                onInput={(e) => setDraft({ ...draft, action: e.currentTarget.value })}
              />
              <datalist id="audit-actions">
                {KNOWN_ACTIONS.map((a) => (
                  <option key={a} value={a} />
                ))}
              </datalist>
              <span class="sr-only" id="audit-action-hint">
                Matches actions starting with this text, e.g. "token." for every token change.
              </span>
            </div>
            <div class="field">
              <label for="audit-since">From</label>
              <input id="audit-since" type="datetime-local" value={draft.since} onInput={(e) => setDraft({ ...draft, since: e.currentTarget.value })} />
            </div>
            <Field id="audit-until" label="Until" error={rangeError}>
              {(describedBy, invalid) => (
                <input
                  id="audit-until"
                  type="datetime-local"
                  value={draft.until}
                  aria-describedby={describedBy}
                  aria-invalid={invalid || undefined}
                  onInput={(e) => setDraft({ ...draft, until: e.currentTarget.value })}
                />
              )}
            </Field>
            <div class="field end">
              <button type="submit">Apply filters</button>
            </div>
          </form>
          <ErrorNotice error={error} />
          {items === null && !error && <p class="muted">Loading the audit log…</p>}
          {items && items.length === 0 && <p class="empty">No audit entries match these filters.</p>}
          {items && items.length > 0 && (
            <div class="table-wrap">
              <table class="data audit">
                <caption class="sr-only">Audit entries, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Actor</th>
                    <th scope="col">Action</th>
                    <th scope="col">Target</th>
                    <th scope="col">From</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((e) => (
                    <tr key={e.seq} data-seq={e.seq}>
                      <td>
                        <time dateTime={e.at}>{when(e.at)}</time>
                      </td>
                      <td>
                        {e.actor ?? '—'}
                        {e.tokenId && <div class="sub">token {e.tokenId}</div>}
                      </td>
                      <th scope="row">
                        <code>{e.action}</code>
                      </th>
                      <td>
                        <span class="sub">{e.targetType}</span> {e.targetId ?? ''}
                      </td>
                      <td>
                        {e.sourceIp ?? '—'}
                        {e.requestId && <div class="sub" title="request id">{e.requestId}</div>}
                      </td>
                      <td>
                        <Details detail={e.detail} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {more && items && (
            <button type="button" class="secondary" onClick={() => load(filter, items[items.length - 1]!.seq)}>
              Show older entries
            </button>
          )}
        </>
      )}
    </section>
  );
}

function Details({ detail }: { detail: Record<string, unknown> }) {
  const entries = Object.entries(detail);
  if (!entries.length) return <span class="muted">—</span>;
  return (
    <dl class="kv">
      {entries.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{Array.isArray(v) ? v.join(' ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}</dd>
        </div>
      ))}
    </dl>
  );
}
