import { createHash, randomBytes } from 'node:crypto';
import { type FSWatcher, constants, watch as watchDirectory } from 'node:fs';
import { type FileHandle, lstat, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { FileSinkSpecT } from '../../config/binding-schema.js';
import { Problem, problem } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Sink, SinkWatchOptions } from './sink.js';
import { type ConfinedPath, type FileConfinement, type SinkOrigin, confineFilePath } from './confine.js';

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

export function fileMode(mode: FileSinkSpecT['mode']): number {
  if (mode === undefined) return 0o600;
  return typeof mode === 'number' ? mode : Number.parseInt(mode, 8);
}

/**
 * What a binding keeps about one of its sinks (its `delivered` record in the store): whether it
 * has delivered there before, and the SHA-256 of what it last wrote (never the content itself).
 */
export interface SinkRecord {
  delivered: boolean;
  sha256?: string;
}

export interface FileSinkOptions {
  /** Who declared the binding: an API binding may only write under `confinement.roots`. Default "config". */
  origin?: SinkOrigin;
  /** Roots and tokenwarden's own paths (see confine.ts); absent: no roots, nothing protected. */
  confinement?: FileConfinement;
  /**
   * The binding's record of this sink. A file that is there and is not the binding's own (not in
   * the record, not what it is about to write) is refused unless the spec says `adopt: true`, and
   * removal deletes only a file that still holds what was last written. Absent: the caller keeps
   * no record (the agent), and neither rule can apply.
   */
  record?: SinkRecord;
  logger?: Logger;
}

/** What `remove()` did: `removed: false` with the reason when the file was left in place. */
export interface SinkRemoval {
  removed: boolean;
  reason?: string;
}

/**
 * A token in a file, e.g. the one Prometheus reads through `authorization.credentials_file` on
 * every scrape. Replaced atomically (a temp file created with O_EXCL|O_NOFOLLOW in the same real
 * directory, fsync, rename, fsync of the directory), so a reader sees the old token or the new one,
 * never half of one; written only when the content differs from what is there. Where it may write
 * is confine.ts's rule; it never follows a symlink and never replaces a file it did not create.
 */
export class FileSink implements Sink {
  readonly describe: string;
  private readonly mode: number;
  private readonly origin: SinkOrigin;
  private record: SinkRecord | undefined;

  constructor(
    private readonly spec: FileSinkSpecT,
    private readonly options: FileSinkOptions = {},
  ) {
    this.describe = `file:${spec.path}`;
    this.mode = fileMode(spec.mode);
    this.origin = options.origin ?? 'config';
    this.record = options.record;
  }

  private locate(): Promise<ConfinedPath> {
    return confineFilePath(this.spec.path, this.options.confinement, this.origin);
  }

  /** The whole rule at apply time: a usable, allowed place, and no foreign file there (unless adopt). */
  async check(): Promise<void> {
    const at = await this.locate();
    if (at.existing) this.refuseForeign(at.path);
  }

  async write(token: string): Promise<{ changed: boolean; fingerprint: string }> {
    const content = `${token}\n`;
    const fingerprint = sha256(content);
    const at = await this.locate();
    if (at.existing) {
      const same = await withFile(at.path, async (handle) => {
        const current = await handle.readFile();
        if (sha256(current) !== fingerprint) return false;
        await this.ensureMetadata(handle);
        return true;
      });
      if (same) {
        this.record = { delivered: true, sha256: fingerprint };
        return { changed: false, fingerprint };
      }
      this.refuseForeign(at.path);
    }
    await replaceFileAtomically(at.path, content, this.mode, this.spec.owner);
    this.record = { delivered: true, sha256: fingerprint };
    return { changed: true, fingerprint };
  }

  async read(): Promise<string | null> {
    // A directory that is gone holds no token: "missing", which delivery heals once it is back.
    if (!(await exists(dirname(this.spec.path)))) return null;
    const at = await this.locate();
    if (!at.existing) return null;
    const raw = await withFile(at.path, (handle) => handle.readFile('utf8'));
    return raw === null ? null : raw.trim();
  }

  /**
   * Deletes the file only when it still holds what this binding last wrote there; a file someone
   * changed (or one this binding never wrote) is left in place, and the reason returned and logged.
   */
  async remove(): Promise<SinkRemoval> {
    try {
      await lstat(this.spec.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return { removed: true };
      throw err;
    }
    let at: ConfinedPath;
    try {
      at = await this.locate();
    } catch (err) {
      if (!(err instanceof Problem)) throw err;
      return this.leave(`${err.detail}; left in place`);
    }
    if (!at.existing) return { removed: true };
    if (this.record) {
      if (!this.record.sha256) return this.leave(`${this.spec.path} holds nothing tokenwarden is known to have written there; left in place`);
      const held = await withFile(at.path, async (handle) => sha256(await handle.readFile()));
      if (held === null) return { removed: true };
      if (held !== this.record.sha256) return this.leave(`${this.spec.path} was changed since tokenwarden last wrote it; left in place`);
    }
    try {
      await unlink(at.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return { removed: true };
    }
    await syncDirectory(at.dir);
    return { removed: true };
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

  private leave(reason: string): SinkRemoval {
    this.options.logger?.warn({ sink: this.describe }, `file sink not deleted: ${reason}`);
    return { removed: false, reason };
  }

  /** A file that is there and is not this binding's own: refused, naming it, unless the spec adopts it. */
  private refuseForeign(path: string): void {
    if (!this.record || this.record.delivered || this.spec.adopt) return;
    const real = path === this.spec.path ? '' : ` (really ${path})`;
    throw problem.conflict(
      `${this.spec.path}${real} already exists and tokenwarden did not create it; move it away, choose another path, or set adopt: true on this sink to let tokenwarden replace it`,
      'path',
    );
  }

  /** Same content but someone changed the mode or owner: put them back without rewriting (on the open file, never through a link). */
  private async ensureMetadata(handle: FileHandle): Promise<void> {
    const st = await handle.stat();
    if ((st.mode & 0o777) !== this.mode) await handle.chmod(this.mode);
    if (this.spec.owner && (st.uid !== this.spec.owner.uid || (this.spec.owner.gid !== undefined && st.gid !== this.spec.owner.gid))) {
      await handle.chown(this.spec.owner.uid, this.spec.owner.gid ?? -1);
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

/** Opens an existing file without following a symlink (O_NOFOLLOW); null when it is gone meanwhile. */
async function withFile<T>(path: string, use: (handle: FileHandle) => Promise<T>): Promise<T | null> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new Error(`${path} became a symbolic link; tokenwarden never follows one`);
    throw err;
  }
  try {
    return await use(handle);
  } finally {
    await handle.close();
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
  // O_EXCL|O_NOFOLLOW: never opens (or creates through) a link an attacker planted at the temp name.
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
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
