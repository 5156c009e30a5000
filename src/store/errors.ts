/**
 * Whether an error means the store cannot be reached right now (the database is down,
 * restarting, refusing connections, or the SQLite file is locked or unreadable), as opposed to
 * a bug or bad input. The API answers these with 503 and Retry-After, as /auth does.
 */
export function storeUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (NETWORK.has(code)) return true;
      // PostgreSQL: class 08 (connection exception), 57P01-03 (shutdown, crash, cannot connect now), 53300 (too many connections).
      if (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code) || code === '53300') return true;
      // better-sqlite3: locked past busy_timeout, or the file cannot be opened or read.
      if (/^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|READONLY_DBMOVED)/.test(code)) return true;
    }
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && PG_MESSAGES.test(message)) return true;
    if (e instanceof AggregateError && e.errors.some((inner) => storeUnavailable(inner))) return true;
  }
  return false;
}

/** Seconds a client is told to wait before retrying while the store is unreachable. */
export const STORE_RETRY_AFTER_SECONDS = 5;

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
/** node-postgres errors that carry no code. */
const PG_MESSAGES = /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect|Client was closed and is not queryable/i;
