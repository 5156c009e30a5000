import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { TOKEN_PATTERN } from '../../src/token/format.js';
import { OUTPUT } from '../support/output.js';

/**
 * Runs after the whole suite (scripts/test-all.sh). Every secret a test saw is in
 * test-output/secrets; no log line and no audit row written during the suite may contain one,
 * nor anything shaped like a whole tokenwarden token.
 */
function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

const files = walk(OUTPUT);
const secrets = [
  ...new Set(
    files
      .filter((f) => f.includes('/secrets/'))
      .flatMap((f) => readFileSync(f, 'utf8').split('\n'))
      .map((s) => s.trim())
      .filter((s) => s.length >= 12),
  ),
];
const logs = files.filter((f) => f.endsWith('.log'));
const databases = files.filter((f) => f.endsWith('.db'));

describe('no secret leaks anywhere the suite wrote', () => {
  it('the suite recorded secrets and logs to check (a check with nothing to look at proves nothing)', () => {
    expect(secrets.length).toBeGreaterThan(10);
    expect(logs.length).toBeGreaterThan(3);
    expect(databases.length).toBeGreaterThan(3);
  });

  it('no log line contains a secret or a whole token', () => {
    const leaks: string[] = [];
    for (const f of logs) {
      const text = readFileSync(f, 'utf8');
      for (const line of text.split('\n')) {
        // The one sanctioned place a token is printed: the first-start banner on stdout.
        if (/^\s{2}twd_/.test(line) && text.includes('shown once, never again')) continue;
        const m = line.match(TOKEN_PATTERN);
        if (m) leaks.push(`${f}: token-shaped ${m[0].slice(0, 16)}…`);
        for (const s of secrets) if (line.includes(s)) leaks.push(`${f}: secret ${s.slice(0, 8)}…`);
      }
    }
    expect(leaks).toEqual([]);
  });

  it('no audit row contains a secret, a whole token or a hash', () => {
    const leaks: string[] = [];
    let rows = 0;
    for (const f of databases) {
      let db: Database.Database;
      try {
        db = new Database(f, { readonly: true, fileMustExist: true });
      } catch {
        continue;
      }
      try {
        const hasAudit = db.prepare("select name from sqlite_master where type='table' and name='audit'").get();
        if (!hasAudit) continue;
        const hashes = (db.prepare('select secret_hash from tokens').all() as { secret_hash: string }[]).map((r) => r.secret_hash);
        for (const row of db.prepare('select * from audit').all()) {
          rows++;
          const text = JSON.stringify(row);
          if (TOKEN_PATTERN.test(text)) leaks.push(`${f}: token-shaped value in audit`);
          TOKEN_PATTERN.lastIndex = 0;
          for (const s of secrets) if (text.includes(s)) leaks.push(`${f}: secret in audit`);
          for (const h of hashes) if (text.includes(h)) leaks.push(`${f}: hash in audit`);
        }
      } finally {
        db.close();
      }
    }
    expect(rows).toBeGreaterThan(10);
    expect(leaks).toEqual([]);
  });
});
