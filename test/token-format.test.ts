import { describe, expect, it } from 'vitest';
import { SECRET_LENGTH, TOKEN_LENGTH, TOKEN_PATTERN, hashSecret, isSameToken, mintToken, parseToken, peekId, redactTokens, secretMatches } from '../src/token/format.js';

describe('token format', () => {
  it('round-trips: a minted token parses back to its id and a secret matching the stored hash', () => {
    const t = mintToken();
    expect(t.plaintext).toMatch(/^twd_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$/);
    expect(t.plaintext).toHaveLength(TOKEN_LENGTH);
    const parsed = parseToken(t.plaintext);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.id).toBe(t.id);
    expect(secretMatches(parsed.secret, t.secretHash)).toBe(true);
    expect(t.secretHash).toBe(hashSecret(parsed.secret));
    expect(t.secretHash).not.toContain(parsed.secret);
  });

  it('recognises a token parsed before by its id, checksum and secret hash alone, and nothing else', () => {
    const t = mintToken();
    const parsed = parseToken(t.plaintext);
    if (!parsed.ok) throw new Error('does not parse');
    expect(peekId(t.plaintext)).toBe(t.id);
    const known = { checksum: parsed.checksum, hash: t.secretHash };
    expect(isSameToken(t.plaintext, known)).toBe(true);
    for (let i = 17; i < t.plaintext.length; i++) {
      const c = t.plaintext[i] === 'a' ? 'b' : 'a';
      expect(isSameToken(t.plaintext.slice(0, i) + c + t.plaintext.slice(i + 1), known), `position ${i}`).toBe(false);
    }
    expect(isSameToken(mintToken(t.id).plaintext, known)).toBe(false); // same id, another secret
    for (const shape of [undefined, '', 'twd_', `${t.plaintext}x`, t.plaintext.slice(1), `xwd_${t.plaintext.slice(4)}`, t.plaintext.replace(/^(twd_.{12})_/, '$1-')]) {
      expect(peekId(shape)).toBeUndefined();
    }
  });

  it('carries at least 256 bits of secret and never repeats', () => {
    const seen = new Set(Array.from({ length: 2000 }, () => mintToken().plaintext));
    expect(seen.size).toBe(2000);
    expect(SECRET_LENGTH * Math.log2(62)).toBeGreaterThanOrEqual(256);
    // Every character of the secret part is drawn from all 62 symbols, not a narrower set.
    const secrets = [...seen].map((t) => parseToken(t)).flatMap((p) => (p.ok ? [p.secret] : []));
    expect(secrets.every((x) => x.length === SECRET_LENGTH)).toBe(true);
    expect(new Set(secrets.join('')).size).toBe(62);
  });

  it('rejects every single-character typo by checksum, without storage', () => {
    const t = mintToken().plaintext;
    let rejected = 0;
    for (let i = 4; i < t.length; i++) {
      if (i === 16) continue; // the separator
      const c = t[i] === 'a' ? 'b' : 'a';
      const typo = t.slice(0, i) + c + t.slice(i + 1);
      const r = parseToken(typo);
      if (!r.ok && r.reason === 'checksum') rejected++;
    }
    expect(rejected).toBe(t.length - 5);
  });

  it('names the reason for malformed input', () => {
    const t = mintToken().plaintext;
    expect(parseToken('')).toEqual({ ok: false, reason: 'empty' });
    expect(parseToken(undefined)).toEqual({ ok: false, reason: 'empty' });
    expect(parseToken(`ghp_${t.slice(4)}`)).toEqual({ ok: false, reason: 'prefix' });
    expect(parseToken(t.slice(0, -1))).toEqual({ ok: false, reason: 'length' });
    expect(parseToken(`${t} `)).toEqual({ ok: false, reason: 'length' });
    expect(parseToken(`${t.slice(0, 20)}\n${t.slice(21)}`)).toEqual({ ok: false, reason: 'charset' });
  });

  it('is found by the published scanner pattern and redacted to its id', () => {
    const t = mintToken();
    const text = `Authorization: Bearer ${t.plaintext} and more`;
    expect(text.match(TOKEN_PATTERN)).toEqual([t.plaintext]);
    const red = redactTokens(text);
    expect(red).not.toContain(t.plaintext.slice(17));
    expect(red).toContain(`twd_${t.id}_[REDACTED]`);
  });

  it('compares in constant time against hashes of a different length without throwing', () => {
    expect(secretMatches('x', 'abcd')).toBe(false);
  });
});
