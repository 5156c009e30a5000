import { dirname, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  Migrator,
  PostgresDialect,
  SqliteDialect,
  type SqliteDatabase,
  SqliteDriver,
  type SqliteDialectConfig,
  type SqliteStatement,
} from 'kysely';
import pg from 'pg';
import { type Engine, InCodeMigrations } from './migrations/index.js';
import type { Database } from './schema.js';
import { createPrivateFile, makePrivateDir, narrowToPrivate } from '../private-files.js';
import {
  type LastUseBatch,
  type VerifyLookup,
  postgresLastUseWriter,
  postgresLookup,
  sqliteLastUseWriter,
  sqliteLookup,
} from './verify-lookup.js';

/**
 * SQLite transactions that begin with the write lock (BEGIN IMMEDIATE), so that another process
 * writing the same file (the server beside `tokenwarden admin recover`, a CLI command with direct
 * access) makes them wait, within busy_timeout, instead of failing: a deferred transaction that
 * has read and then writes after another connection committed fails at once (SQLITE_BUSY_SNAPSHOT),
 * whatever the timeout. Within one process every write already goes through the one connection.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly settings: SqliteDialectConfig) {
    super(settings);
  }
  override createDriver(): Driver {
    return new (class extends SqliteDriver {
      override async beginTransaction(connection: DatabaseConnection): Promise<void> {
        await connection.executeQuery(CompiledQuery.raw('begin immediate'));
      }
    })(this.settings);
  }
}

/** How many distinct statements a SQLite connection keeps prepared (a query's text is its key). */
const STATEMENT_CACHE = 256;

/**
 * The file as Kysely's SQLite driver sees it, with its statements kept prepared: Kysely asks for
 * a new statement on every query, and preparing one costs more than running a point read, on the
 * API's calls as on the controller's and the revocation watch's passes that run every second.
 * The least recently used statement goes first; one still being iterated is never handed out twice.
 * `afterWrite` runs after every statement that writes (a commit among them), so that this
 * process's own cold checks read what it has just written (the lookup's snapshot, verify-lookup.ts).
 */
export function withStatementCache(file: SQLite.Database, options: { limit?: number; afterWrite?: () => void } = {}): SqliteDatabase {
  const { limit = STATEMENT_CACHE, afterWrite } = options;
  const kept = new Map<string, { statement: SQLite.Statement; kysely: SqliteStatement }>();
  const wrap = (statement: SQLite.Statement): SqliteStatement => {
    if (statement.reader || !afterWrite) return statement;
    return {
      reader: false,
      all: (parameters) => statement.all(parameters),
      iterate: (parameters) => statement.iterate(parameters),
      run: (parameters) => {
        try {
          return statement.run(parameters);
        } finally {
          afterWrite();
        }
      },
    };
  };
  return {
    close: () => {
      kept.clear();
      file.close();
    },
    prepare(sql) {
      const known = kept.get(sql);
      if (known !== undefined && !known.statement.busy) {
        kept.delete(sql);
        kept.set(sql, known);
        return known.kysely;
      }
      const statement = file.prepare(sql);
      const entry = { statement, kysely: wrap(statement) };
      if (kept.size >= limit) kept.delete(kept.keys().next().value!);
      kept.set(sql, entry);
      return entry.kysely;
    },
  };
}

export interface Connection {
  db: Kysely<Database>;
  engine: Engine;
  /** Where the data lives, for the operator (a file path, or the URL without its password). */
  location: string;
  /** The verifier's prepared point reads (verify-lookup.ts). */
  lookup: VerifyLookup;
  /** A batch of last uses, written in one statement (PostgreSQL) or one transaction of one prepared statement (SQLite). */
  writeLastUse(batch: LastUseBatch): Promise<void>;
  close(): Promise<void>;
}

// int8 columns hold epoch milliseconds, well inside Number's exact range.
pg.types.setTypeParser(20, (v) => Number(v));

export function describeLocation(url: string): string {
  if (!/^postgres(ql)?:/.test(url)) return resolve(url.replace(/^sqlite:(\/\/)?/, ''));
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** `postgres://…` selects PostgreSQL; anything else is a SQLite file path (optionally `sqlite:` prefixed). */
export async function connect(url: string, options: { poolSize?: number } = {}): Promise<Connection> {
  let db: Kysely<Database>;
  let engine: Engine;
  let lookup: VerifyLookup;
  let writeLastUse: Connection['writeLastUse'];
  if (/^postgres(ql)?:/.test(url)) {
    engine = 'postgres';
    const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10 });
    // A dropped connection must not crash the process; the pool replaces it. The pool listens for
    // errors only on idle clients: one checked out between two queries (a database restart, a
    // network cut) would emit an unhandled 'error' and end the process, so every client gets a
    // listener of its own. Its next query fails, and the pool discards it on release.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    lookup = postgresLookup(pool);
    writeLastUse = postgresLastUseWriter(pool);
  } else {
    engine = 'sqlite';
    const path = describeLocation(url);
    // SQLite creates -wal and -shm with the mode of the database file: a 0600 database keeps them 0600.
    makePrivateDir(dirname(path));
    createPrivateFile(path);
    narrowToPrivate([path]);
    const file = new SQLite(path);
    file.pragma('journal_mode = WAL');
    narrowToPrivate([`${path}-wal`, `${path}-shm`]);
    file.pragma('busy_timeout = 5000');
    file.pragma('foreign_keys = ON');
    file.pragma('synchronous = NORMAL');
    // A reading connection of its own, opened on the first cold check: it sees committed rows only.
    const reads = sqliteLookup(() => {
      const reader = new SQLite(path, { fileMustExist: true });
      reader.pragma('busy_timeout = 5000');
      reader.pragma('query_only = ON');
      // Point reads spread over a large table: pages mapped from the OS cache, not copied into a small private cache.
      reader.pragma('mmap_size = 1073741824');
      return reader;
    });
    lookup = reads;
    // What this process writes, its own cold checks read at once.
    db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: withStatementCache(file, { afterWrite: reads.refresh }) }) });
    writeLastUse = sqliteLastUseWriter(file, (work) => db.connection().execute(async () => work()));
  }
  const migrator = new Migrator({ db, provider: new InCodeMigrations({ engine }) });
  const { error } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    throw new Error(`database migration failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    db,
    engine,
    location: describeLocation(url),
    lookup,
    writeLastUse,
    close: async () => {
      await lookup.close();
      await db.destroy();
    },
  };
}
