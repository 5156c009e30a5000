import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { replaceFileAtomically } from '../delivery/sinks/file-sink.js';
import { makePrivateDir } from '../private-files.js';
import type { SourceStateStore } from '../sources/sealed-state.js';
import type { RefreshState } from '../delivery/refresh/refresher.js';

/** Per binding: the refresh schedule, and for minted tokens their ids (never the token). */
export interface AgentBindingState {
  refresh?: RefreshState;
  /** Minted on a remote server: the id of the token in the sinks, and old ones to revoke after their grace. */
  minted?: { tokenId: string | null; retire: { id: string; at: number }[] };
}

export interface AgentStateData {
  version: 1;
  bindings: Record<string, AgentBindingState>;
  /** Sealed (AES-256-GCM) source secrets, e.g. a rotated refresh token. */
  sealed: Record<string, string>;
}

/**
 * The agent's only memory: a small JSON file, mode 0600, replaced atomically (temp file in the
 * same directory, fsync, rename) so a crash leaves the old state or the new, never half.
 */
export class AgentStateFile implements SourceStateStore {
  data: AgentStateData;
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {
    this.data = AgentStateFile.read(path);
  }

  private static read(path: string): AgentStateData {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, bindings: {}, sealed: {} };
      throw new Error(`cannot read the agent state ${path} (${(err as NodeJS.ErrnoException).code})`);
    }
    try {
      const parsed = JSON.parse(text) as Partial<AgentStateData>;
      return { version: 1, bindings: parsed.bindings ?? {}, sealed: parsed.sealed ?? {} };
    } catch {
      throw new Error(`the agent state ${path} is not valid JSON; move it away to start afresh (refresh tokens kept in it would be lost)`);
    }
  }

  binding(name: string): AgentBindingState {
    return (this.data.bindings[name] ??= {});
  }

  /** Writes the whole state; writes are serialized so the last one wins. */
  save(): Promise<void> {
    const text = `${JSON.stringify(this.data, null, 2)}\n`;
    this.writing = this.writing.catch(() => undefined).then(() => this.replace(text));
    return this.writing;
  }

  private async replace(text: string): Promise<void> {
    makePrivateDir(dirname(this.path));
    await replaceFileAtomically(this.path, text, 0o600);
  }

  async get(key: string): Promise<string | undefined> {
    return this.data.sealed[key];
  }
  async put(key: string, sealed: string): Promise<void> {
    this.data.sealed[key] = sealed;
    await this.save();
  }
  async delete(key: string): Promise<void> {
    delete this.data.sealed[key];
    await this.save();
  }
}
