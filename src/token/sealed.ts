import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { makePrivateDir } from '../private-files.js';

/**
 * Seals a freshly minted token while its rotation is in flight, so that a process killed
 * between mint and delivery can still deliver it after a restart (the store never holds a
 * plaintext token). AES-256-GCM; the rotation id is the associated data, so a sealed value
 * cannot be moved to another rotation row. The value is erased once the token is delivered and
 * confirmed.
 */
export class SealedBox {
  private constructor(private readonly key: Buffer) {}

  /** Reads the 32-byte key (base64 or raw) from `path`, creating it (mode 0600) on first use. */
  static fromFile(path: string): SealedBox {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      makePrivateDir(dirname(path));
      try {
        writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
      } catch (raced) {
        if ((raced as NodeJS.ErrnoException).code !== 'EEXIST') throw raced;
      }
      text = readFileSync(path, 'utf8');
    }
    const key = Buffer.from(text.trim(), 'base64');
    if (key.length !== 32) throw new Error(`the delivery key in ${path} must be 32 bytes, base64-encoded`);
    return new SealedBox(key);
  }

  static withKey(key: Buffer): SealedBox {
    if (key.length !== 32) throw new Error('the delivery key must be 32 bytes');
    return new SealedBox(key);
  }

  seal(plaintext: string, associated: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(associated));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `v1.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  /** Null when the value was sealed with another key or for another row. */
  open(sealed: string, associated: string): string | null {
    if (!sealed.startsWith('v1.')) return null;
    const raw = Buffer.from(sealed.slice(3), 'base64');
    if (raw.length < 29) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(associated));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      return null;
    }
  }
}
