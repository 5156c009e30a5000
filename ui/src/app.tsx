import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Policy, type Whoami, api, signIn, signOut, whenSessionLost } from './api.js';
import { ErrorNotice, TextField } from './components/ui.js';
import { AuditPage } from './pages/audit.js';
import { BindingsPage } from './pages/bindings.js';
import { IdentitiesPage } from './pages/identities.js';
import { TokensPage } from './pages/tokens.js';

export interface Session {
  whoami: Whoami;
  policy: Policy;
  holds: (scope: string) => boolean;
}

const PAGES = {
  tokens: { title: 'Tokens', Page: TokensPage },
  identities: { title: 'Identities and roles', Page: IdentitiesPage },
  bindings: { title: 'Bindings', Page: BindingsPage },
  audit: { title: 'Audit log', Page: AuditPage },
} as const;
type PageName = keyof typeof PAGES;

function currentPage(): PageName {
  const name = location.hash.replace(/^#\/?/, '').split('?')[0] as PageName;
  return name in PAGES ? name : 'tokens';
}

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [page, setPage] = useState<PageName>(currentPage());

  useEffect(() => {
    whenSessionLost((reason) => {
      signOut();
      setSession(null);
      setNotice(`You were signed out: ${reason}`);
    });
    const onHash = () => setPage(currentPage());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  // A new page: say so to assistive technology by moving focus to its heading.
  useEffect(() => {
    if (session) document.querySelector<HTMLElement>('main h1')?.focus();
    document.title = session ? `${PAGES[page].title} · tokenwarden` : 'Sign in · tokenwarden';
  }, [page, session]);

  if (!session) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(s) => {
          setNotice(null);
          setSession(s);
        }}
      />
    );
  }

  const { Page } = PAGES[page];
  return (
    <>
      <a class="skip-link" href="#main" onClick={(e) => {
        e.preventDefault();
        document.querySelector<HTMLElement>('main h1')?.focus();
      }}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">tokenwarden</span>
        <nav aria-label="Main">
          <ul>
            {(Object.keys(PAGES) as PageName[]).map((name) => (
              <li key={name}>
                <a href={`#/${name}`} aria-current={page === name ? 'page' : undefined}>
                  {PAGES[name].title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>
            Signed in as <strong data-testid="whoami">{session.whoami.actor}</strong>
          </span>
          <button
            type="button"
            class="secondary"
            onClick={() => {
              signOut();
              setSession(null);
              setNotice('You signed out. The token was only held in this tab and is gone from it.');
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        <Page session={session} />
      </main>
    </>
  );
}

function SignIn(props: { notice: string | null; onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setFailure(null);
    const value = token.trim();
    if (!value) {
      setError('Paste a tokenwarden token (it starts with "twd_").');
      input.current?.focus();
      return;
    }
    setBusy(true);
    signIn(value);
    try {
      // One request first: a wrong token then costs one failed attempt, not two.
      const whoami = await api<Whoami>('GET', '/whoami');
      const policy = await api<Policy>('GET', '/policy');
      setToken('');
      const held = new Set(whoami.scopes);
      props.onSignedIn({ whoami, policy, holds: (s) => held.has(s) });
    } catch (err) {
      signOut();
      if (err instanceof ApiError && (err.status === 401 || err.status === 429)) setError(err.message);
      else setFailure(err);
      input.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="signin">
      <form onSubmit={submit} noValidate aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to tokenwarden</h1>
        {props.notice && (
          <p class="notice" role="status">
            {props.notice}
          </p>
        )}
        <TextField
          id="signin-token"
          label="Your tokenwarden token"
          type="password"
          value={token}
          onInput={setToken}
          error={error}
          inputRef={input}
          placeholder="twd_…"
          hint="Kept in this tab's memory only: never stored in the browser. Reloading the page signs you out."
        />
        <ErrorNotice error={failure} />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
