import { constants, type Stats } from 'node:fs';
import { access, lstat, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { Problem, problem } from '../../errors.js';

/** Who declared a binding: the configuration file (whoever runs the host) or the API/CLI (anyone holding binding.manage). */
export type SinkOrigin = 'config' | 'api';

/** Where file sinks may write, and what they may never touch. */
export interface FileConfinement {
  /** `delivery.fileRoots`: the only directories (and their subdirectories) a binding from the API may write under. */
  roots: readonly string[];
  /** tokenwarden's own directories (the data dir, the delivery key's dir): no binding of any origin writes inside them. */
  protectedDirs: readonly string[];
  /** tokenwarden's own files (configuration, TLS certificate and key, keys, the database): never replaced. */
  protectedFiles: readonly string[];
}

/** Where a file sink really writes: the real directory (symlinks resolved) and the file in it, and what is there now. */
export interface ConfinedPath {
  dir: string;
  path: string;
  /** lstat of the target; null when there is no file yet. Never a symlink (refused). */
  existing: Stats | null;
}

const ROOTS_SETTING = 'delivery.fileRoots (env TOKENWARDEN_DELIVERY_FILE_ROOTS)';

/** The real path of a directory, or its absolute form when it does not exist (yet). */
async function real(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return resolve(path);
  }
}

/** A protected file's real location: its real directory plus its name (the file itself may be missing). */
async function realFile(path: string): Promise<string> {
  return join(await real(dirname(resolve(path))), basename(path));
}

function inside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * The one rule of where a file sink may write, checked when a binding is validated and again
 * before every write, read and removal (a root, a link or a directory may change in between):
 *
 * - an absolute path in an existing directory tokenwarden may write;
 * - the directory is resolved with realpath, so `..` and symlinked parents are judged by where
 *   they really lead, and the sink then writes into that real directory;
 * - never inside tokenwarden's own data directory, never over its configuration, TLS or key files
 *   (every origin, the configuration file included);
 * - a binding from the API only under one of `delivery.fileRoots` (none by default);
 * - the file itself is never a symbolic link (tokenwarden never follows one) nor anything but a
 *   regular file.
 *
 * Problems name `field` (the sink's own, e.g. "path"): 403 for a place the binding may not write,
 * 400 for a path that is not usable.
 */
export async function confineFilePath(path: string, rules: FileConfinement | undefined, origin: SinkOrigin, field = 'path'): Promise<ConfinedPath> {
  if (!isAbsolute(path)) throw problem.invalid(field, `${field} must be an absolute path, got "${path}"`);
  const lexical = resolve(path);
  const name = basename(lexical);
  if (!name || lexical === sep) throw problem.invalid(field, `${path} names no file; name a file`);
  const parent = dirname(lexical);
  let dir: string;
  try {
    dir = await realpath(parent);
    if (!(await stat(dir)).isDirectory()) throw problem.invalid(field, `${parent} is not a directory`);
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    if (err instanceof Problem) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not writable by tokenwarden' : code === 'ENOTDIR' ? 'is not a directory' : `cannot be used (${code})`;
    throw problem.invalid(field, `the directory ${parent} ${why}; create it or give tokenwarden write access`);
  }
  const target = join(dir, name);
  const via = target === lexical ? '' : ` (really ${target})`;
  for (const own of rules?.protectedDirs ?? []) {
    if (inside(target, await real(own))) {
      throw new Problem('forbidden', `${path}${via} is inside tokenwarden's own data directory ${own}; no sink may write there: choose a path elsewhere`, { field });
    }
  }
  for (const own of rules?.protectedFiles ?? []) {
    if (target === (await realFile(own))) {
      throw new Problem('forbidden', `${path}${via} is one of tokenwarden's own files (${own}); no sink may write over it: choose another path`, { field });
    }
  }
  if (origin === 'api') {
    const roots = rules?.roots ?? [];
    if (!roots.length) {
      throw new Problem(
        'forbidden',
        `file sinks of bindings created through the API or CLI may only write under the directories in ${ROOTS_SETTING}, and none is set; ask the operator to add a directory there, or declare the binding in the configuration file`,
        { field },
      );
    }
    let allowed = false;
    for (const root of roots) if (inside(dir, await real(root))) allowed = true;
    if (!allowed) {
      throw new Problem('forbidden', `${path}${via} is outside ${ROOTS_SETTING} (${roots.join(', ')}); choose a path under one of them`, { field });
    }
  }
  let existing: Stats | null = null;
  try {
    existing = await lstat(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw problem.invalid(field, `${path} cannot be inspected (${(err as NodeJS.ErrnoException).code})`);
  }
  if (existing?.isSymbolicLink()) {
    throw problem.invalid(field, `${path}${via} is a symbolic link; tokenwarden never follows one: remove the link or name the real file`);
  }
  if (existing?.isDirectory()) throw problem.invalid(field, `${path} is a directory; name a file`);
  if (existing && !existing.isFile()) throw problem.invalid(field, `${path} is not a regular file; name a regular file`);
  return { dir, path: target, existing };
}
