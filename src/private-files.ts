import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';

/**
 * tokenwarden's own files (the SQLite database and its -wal/-shm, delivery.key, the agent's
 * state) hold identities, hashes, the audit log and keys: each is 0600 in a 0700 directory,
 * whatever the umask (a umask only removes bits, so creating with these modes is enough; files
 * from an older version are narrowed when opened).
 */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** Creates `dir` (and missing parents) 0700; an existing directory is left as it is (see openDataDirs). */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** Creates `path` empty with mode 0600 unless it exists, so that whatever opens it next finds it private. */
export function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, 'wx', PRIVATE_FILE_MODE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Narrows each existing file of `paths` to 0600 (files written by an older version, or under another umask). */
export function narrowToPrivate(paths: readonly string[]): void {
  for (const p of paths) {
    try {
      if ((statSync(p).mode & 0o777) !== PRIVATE_FILE_MODE) chmodSync(p, PRIVATE_FILE_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/** The directories of `dirs` that exist and that group or other users may read or enter, with their modes. */
export function openDataDirs(dirs: readonly string[]): { dir: string; mode: string }[] {
  const out: { dir: string; mode: string }[] = [];
  for (const dir of new Set(dirs)) {
    if (!existsSync(dir)) continue;
    const mode = statSync(dir).mode & 0o777;
    if (mode & 0o077) out.push({ dir, mode: `0${mode.toString(8)}` });
  }
  return out;
}
