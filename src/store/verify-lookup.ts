import type SQLite from 'better-sqlite3';
import type pg from 'pg';

/** What a cold check needs of a token and its identity, in one row. */
export interface TokenForVerify {
  id: string;
  name: string;
  secret_hash: string;
  /** JSON array of scope names. */
  scopes: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  actor_id: string;
  actor_name: string;
  actor_kind: 'user' | 'service';
  actor_disabled: number;
}

/**
 * The verifier's narrow port into the store: one prepared point read per cold check, and the
 * identity's effective scopes (read once per identity; the verifier keeps them until the grant-change
 * fan-out says otherwise). SQLite answers synchronously, from statements prepared once on a
 * connection of its own (so it reads committed rows only, never another operation's open
 * transaction, and never waits for one); PostgreSQL with named statements, one round trip each.
 */
export interface VerifyLookup {
  token(id: string): TokenForVerify | undefined | Promise<TokenForVerify | undefined>;
  /** The sorted union of the identity's direct scopes and its roles' scopes; empty for an unknown identity. */
  scopesOfActor(actorId: string): string[] | Promise<string[]>;
  /**
   * Reads from here on see every commit made before this call. The verifier calls it when it
   * learns of a revocation or grant change, before it answers again (SQLite's shared snapshot,
   * below; PostgreSQL reads are never older than their round trip).
   */
  refresh(): void;
  close(): Promise<void>;
}

/** The columns in TokenForVerify's order; SQLite hands them back as an array (cheaper than an object per row). */
const TOKEN_SQL = (p: (n: number) => string) =>
  'select t.id, t.name, t.secret_hash, t.scopes, t.created_at, t.expires_at, t.revoked_at, t.actor_id, ' +
  'a.name as actor_name, a.kind as actor_kind, a.disabled as actor_disabled ' +
  `from tokens t inner join actors a on a.id = t.actor_id where t.id = ${p(1)}`;

/** One row per role of the identity (one row with a null role when it holds none). */
const SCOPES_SQL = (p: (n: number) => string) =>
  'select a.scopes as direct, r.scopes as role from actors a ' +
  'left join actor_roles ar on ar.actor_id = a.id left join roles r on r.name = ar.role_name ' +
  `where a.id = ${p(1)}`;

/** Direct scopes ∪ role scopes, sorted: the one place the rule lives (Store.scopesOfActor uses it too). */
export function effectiveScopes(direct: string | undefined, roles: readonly (string | null)[]): string[] {
  if (direct === undefined) return [];
  const all = new Set<string>(JSON.parse(direct) as string[]);
  for (const r of roles) if (r !== null) for (const s of JSON.parse(r) as string[]) all.add(s);
  return [...all].sort();
}

/**
 * Tokens' latest uses, column by column (entry i of each array is one token's): the verifier's
 * LastUseRecorder fills it, an auth thread hands it to the main thread as it is (four arrays of
 * primitives cross threads without an object per use), and PostgreSQL's unnest takes the columns.
 */
export interface LastUseBatch {
  ids: string[];
  at: number[];
  ip: (string | null)[];
  agent: (string | null)[];
}

export function emptyLastUseBatch(): LastUseBatch {
  return { ids: [], at: [], ip: [], agent: [] };
}

/** A batch from single uses (tests, one-off callers). */
export function lastUseBatchOf(uses: readonly { id: string; at: number; ip: string | null; agent: string | null }[]): LastUseBatch {
  return { ids: uses.map((u) => u.id), at: uses.map((u) => u.at), ip: uses.map((u) => u.ip), agent: uses.map((u) => u.agent) };
}

/** Never moves a token's last use backwards (replicas flush out of order). */
const LAST_USE_SQLITE =
  'update tokens set last_used_at = ?, last_used_ip = ?, last_used_agent = ? where id = ? and (last_used_at is null or last_used_at < ?)';
const LAST_USE_POSTGRES =
  'update tokens t set last_used_at = v.at, last_used_ip = v.ip, last_used_agent = v.agent ' +
  'from (select unnest($1::text[]) as id, unnest($2::bigint[]) as at, unnest($3::text[]) as ip, unnest($4::text[]) as agent) v ' +
  'where t.id = v.id and (t.last_used_at is null or t.last_used_at < v.at)';

/**
 * A batch of last uses in one transaction from one prepared statement. `exclusive` runs the work
 * while no other operation holds the writing connection (Kysely's own connection lock), so the
 * synchronous transaction never interleaves with another operation's open one.
 */
export function sqliteLastUseWriter(file: SQLite.Database, exclusive: (work: () => void) => Promise<void>): (batch: LastUseBatch) => Promise<void> {
  let write: ((batch: LastUseBatch) => void) | undefined;
  return (batch) =>
    exclusive(() => {
      if (!write) {
        const update = file.prepare<[number, string | null, string | null, string, number]>(LAST_USE_SQLITE);
        write = file.transaction((b: LastUseBatch) => {
          for (let i = 0; i < b.ids.length; i++) update.run(b.at[i]!, b.ip[i]!, b.agent[i]!, b.ids[i]!, b.at[i]!);
        });
      }
      write(batch);
    });
}

/** A batch of last uses in one named statement: one round trip whatever its size. */
export function postgresLastUseWriter(pool: pg.Pool): (batch: LastUseBatch) => Promise<void> {
  return async (batch) => {
    await pool.query({ name: 'tokenwarden_last_use', text: LAST_USE_POSTGRES, values: [batch.ids, batch.at, batch.ip, batch.agent] });
  };
}

/** Cold checks that may share one SQLite read snapshot (see sqliteLookup). */
const SNAPSHOT_READS = 64;

/**
 * SQLite point reads for the verifier. A read outside a transaction costs its own read
 * transaction: two fcntl locks on the -shm file and an fstat, several microseconds on a
 * virtual machine, more than the read itself. So the cold checks of one event-loop turn share
 * one snapshot, ended when the turn ends (setImmediate), after SNAPSHOT_READS reads, and by
 * refresh() (a revocation or grant change learnt, which the verifier passes on before it answers
 * again). A snapshot only ever hides commits made during the turn, as the verifier's own cache
 * does until it hears of them; and since a token is never un-revoked, the one answer it could
 * get wrong is "absent": a token minted a moment ago. That answer is read again outside it.
 */
export function sqliteLookup(open: () => SQLite.Database): VerifyLookup {
  let file: SQLite.Database | undefined;
  let token: SQLite.Statement<[string], unknown[]> | undefined;
  let scopes: SQLite.Statement<[string], { direct: string; role: string | null }> | undefined;
  let begin: SQLite.Statement | undefined;
  let commit: SQLite.Statement | undefined;
  /** Reads taken in the open snapshot; 0 = none is open. */
  let reads = 0;
  const end = () => {
    if (reads === 0) return;
    reads = 0;
    commit!.run();
  };
  /** Whether the read about to run shares a snapshot opened before it (and may be older than this call). */
  const enter = (): boolean => {
    if (!file) {
      file = open();
      token = file.prepare<[string], unknown[]>(TOKEN_SQL(() => '?')).raw(true);
      scopes = file.prepare(SCOPES_SQL(() => '?'));
      begin = file.prepare('begin');
      commit = file.prepare('commit');
    }
    if (reads >= SNAPSHOT_READS) end();
    if (reads++ > 0) return true;
    begin!.run();
    setImmediate(end);
    return false;
  };
  /** One read, in the turn's snapshot; an absent answer from a shared snapshot is read again outside it. */
  const read = <T>(run: () => T, absent: (r: T) => boolean): T => {
    const shared = enter();
    const r = run();
    if (!shared || !absent(r)) return r;
    end();
    enter();
    return run();
  };
  return {
    token(id) {
      const r = read(() => token!.get(id), (row) => row === undefined);
      if (r === undefined) return undefined;
      return {
        id: r[0] as string,
        name: r[1] as string,
        secret_hash: r[2] as string,
        scopes: r[3] as string,
        created_at: r[4] as number,
        expires_at: r[5] as number,
        revoked_at: r[6] as number | null,
        actor_id: r[7] as string,
        actor_name: r[8] as string,
        actor_kind: r[9] as TokenForVerify['actor_kind'],
        actor_disabled: r[10] as number,
      };
    },
    scopesOfActor(actorId) {
      const rows = read(() => scopes!.all(actorId), (found) => found.length === 0);
      return effectiveScopes(rows[0]?.direct, rows.map((r) => r.role));
    },
    refresh: end,
    async close() {
      end();
      file?.close();
      file = undefined;
    },
  };
}

export function postgresLookup(pool: pg.Pool): VerifyLookup {
  const tokenSql = TOKEN_SQL((n) => `$${n}`);
  const scopesSql = SCOPES_SQL((n) => `$${n}`);
  return {
    async token(id) {
      const res = await pool.query<TokenForVerify>({ name: 'tokenwarden_verify_token', text: tokenSql, values: [id] });
      return res.rows[0];
    },
    async scopesOfActor(actorId) {
      const res = await pool.query<{ direct: string; role: string | null }>({ name: 'tokenwarden_verify_scopes', text: scopesSql, values: [actorId] });
      return effectiveScopes(res.rows[0]?.direct, res.rows.map((r) => r.role));
    },
    refresh() {},
    async close() {},
  };
}
