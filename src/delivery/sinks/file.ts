import { createHash, randomBytes } from 'node:crypto';
import { type FSWatcher, constants, watch as watchDirectory } from 'node:fs';
import { access, chmod, chown, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { FileSinkSpecT } from '../../config/binding-schema.js';
import { problem } from '../../errors.js';
import type { Sink, SinkWatchOptions } from '../sink.js';

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

export function fileMode(mode: FileSinkSpecT['mode']): number {
  if (mode === undefined) return 0o600;
  return typeof mode === 'number' ? mode : Number.parseInt(mode, 8);
}

/**
 * A token in a file, e.g. the one Prometheus reads through `authorization.credentials_file` on
 * every scrape. Replaced atomically (a temp file in the same directory, fsync, rename, fsync of
 * the directory), so a reader sees the old token or the new one, never half of one; written only
 * when the content differs from what is there.
 */
export class FileSink implements Sink {
  readonly describe: string;
  private readonly mode: number;

  constructor(private readonly spec: FileSinkSpecT) {
    this.describe = `file:${spec.path}`;
    this.mode = fileMode(spec.mode);
  }

  /** Refuses a relative path and a directory this process cannot write, naming the field. */
  async check(field = 'path'): Promise<void> {
    if (!isAbsolute(this.spec.path)) throw problem.invalid(field, `${field} must be an absolute path, got "${this.spec.path}"`);
    const dir = dirname(this.spec.path);
    try {
      const st = await stat(dir);
      if (!st.isDirectory()) throw problem.invalid(field, `${dir} is not a directory`);
      await access(dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      if ((err as { status?: number }).status) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not writable by tokenwarden' : `cannot be used (${code})`;
      throw problem.invalid(field, `the directory ${dir} ${why}; create it or give tokenwarden write access`);
    }
    try {
      const st = await stat(this.spec.path);
      if (st.isDirectory()) throw problem.invalid(field, `${this.spec.path} is a directory; name a file`);
    } catch (err) {
      if ((err as { status?: number }).status) throw err;
    }
  }

  async write(token: string): Promise<{ changed: boolean }> {
    const content = `${token}\n`;
    const current = await this.readRaw();
    if (current !== null && sha256(current) === sha256(content)) {
      await this.ensureMetadata();
      return { changed: false };
    }
    await replaceFileAtomically(this.spec.path, content, this.mode, this.spec.owner);
    return { changed: true };
  }

  async read(): Promise<string | null> {
    const raw = await this.readRaw();
    return raw === null ? null : raw.trim();
  }

  async remove(): Promise<void> {
    try {
      await unlink(this.spec.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return;
    }
    await syncDirectory(dirname(this.spec.path));
  }

  /**
   * Watches the directory (a rename onto the file, as an atomic replace does, is seen there; a
   * watch on the file itself would die with its inode), plus a periodic stat as the fallback for
   * file systems where fs.watch says nothing (NFS, some container mounts) or the directory is gone.
   */
  watch(onChange: () => void, options: SinkWatchOptions = {}): () => void {
    const dir = dirname(this.spec.path);
    const name = basename(this.spec.path);
    let watcher: FSWatcher | undefined;
    const arm = () => {
      if (watcher) return;
      try {
        watcher = watchDirectory(dir, { persistent: false }, (_event, file) => {
          if (file === null || file === name) onChange();
        });
        watcher.on('error', () => {
          watcher?.close();
          watcher = undefined;
        });
      } catch {
        watcher = undefined; // the directory is gone: the stat below notices, and re-arms once it is back
      }
    };
    arm();
    let last: string | undefined;
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      stat(this.spec.path)
        .then((st) => `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`, () => 'absent')
        .then((now) => {
          if (last !== undefined && now !== last) onChange();
          last = now;
          arm();
        })
        .finally(() => (busy = false));
    }, options.pollMs ?? 2000);
    timer.unref();
    return () => {
      clearInterval(timer);
      watcher?.close();
      watcher = undefined;
    };
  }

  private async readRaw(): Promise<string | null> {
    try {
      return await readFile(this.spec.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Same content but someone changed the mode or owner: put them back without rewriting. */
  private async ensureMetadata(): Promise<void> {
    const st = await stat(this.spec.path);
    if ((st.mode & 0o777) !== this.mode) await chmod(this.spec.path, this.mode);
    if (this.spec.owner && (st.uid !== this.spec.owner.uid || (this.spec.owner.gid !== undefined && st.gid !== this.spec.owner.gid))) {
      await chown(this.spec.path, this.spec.owner.uid, this.spec.owner.gid ?? -1);
    }
  }
}

/**
 * Replaces `path` so that a reader sees the old content or the new, never a torn file: a temp file
 * in the same directory (mode set despite the umask, optional owner), fsync, rename, fsync the
 * directory. The temp file is removed when any step fails.
 */
export async function replaceFileAtomically(path: string, content: string, mode: number, owner?: { uid: number; gid?: number }): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.chmod(mode); // the umask may have narrowed `mode` at creation
    if (owner) await handle.chown(owner.uid, owner.gid ?? -1);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
