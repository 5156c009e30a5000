import { hash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * Token format: `twd_<id>_<secret><checksum>`
 *  - `twd_`      a fixed prefix secret scanners can match on
 *  - id          12 base62 chars, the public lookup id (shown in lists, audit, metrics)
 *  - secret      43 base62 chars = 256 bits from the OS CSPRNG
 *  - checksum    6 base62 chars of CRC32 over everything before it, so a mistyped or
 *                truncated token is rejected without touching storage
 * Only SHA-256(secret) is stored: the secret carries 256 bits of entropy, so a slow hash
 * would add latency to every check without adding safety.
 */
export const TOKEN_PREFIX = 'twd_';
export const ID_LENGTH = 12;
export const SECRET_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;
export const TOKEN_LENGTH = TOKEN_PREFIX.length + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH;
/** For secret scanners (gitleaks, GitHub custom patterns) and for redaction. */
export const TOKEN_PATTERN = /twd_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}/g;

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BASE62 = /^[0-9A-Za-z]+$/;

export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4 * 62: rejecting bytes above it keeps every character equally likely.
      if (byte < 248 && out.length < length) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

function toBase62(value: number, width: number): string {
  let out = '';
  let rest = value >>> 0;
  for (let i = 0; i < width; i++) {
    out = ALPHABET[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  return out;
}

function checksumOf(body: string): string {
  return toBase62(crc32(body), CHECKSUM_LENGTH);
}

export interface MintedToken {
  id: string;
  /** The whole bearer string. Returned once to the caller, never stored. */
  plaintext: string;
  secretHash: string;
}

export function newTokenId(): string {
  return randomBase62(ID_LENGTH);
}

export function mintToken(id: string = newTokenId()): MintedToken {
  const secret = randomBase62(SECRET_LENGTH);
  const body = `${TOKEN_PREFIX}${id}_${secret}`;
  return { id, plaintext: body + checksumOf(body), secretHash: hashSecret(secret) };
}

export type ParseFailure = 'empty' | 'prefix' | 'length' | 'charset' | 'checksum';
export type ParsedToken = { ok: true; id: string; secret: string; checksum: string } | { ok: false; reason: ParseFailure };

const PARSE_MESSAGES: Record<ParseFailure, string> = {
  empty: 'no token was given',
  prefix: `the token does not start with "${TOKEN_PREFIX}", so it was not issued by tokenwarden`,
  length: `the token has the wrong length (a tokenwarden token is ${TOKEN_LENGTH} characters); it may be truncated or have extra characters`,
  charset: 'the token contains characters that a tokenwarden token never has (whitespace, quotes, or a newline)',
  checksum: 'the checksum does not match: the token was mistyped, truncated or altered',
};

export function describeParseFailure(reason: ParseFailure): string {
  return PARSE_MESSAGES[reason];
}

// Where each part starts: `twd_` id `_` secret checksum.
const ID_START = TOKEN_PREFIX.length;
const SEPARATOR = ID_START + ID_LENGTH;
const SECRET_START = SEPARATOR + 1;
const CHECKSUM_START = TOKEN_LENGTH - CHECKSUM_LENGTH;

/** Pure and allocation-light: runs on every forward-auth request before any I/O. */
export function parseToken(text: string | undefined): ParsedToken {
  if (!text) return { ok: false, reason: 'empty' };
  if (!text.startsWith(TOKEN_PREFIX)) return { ok: false, reason: 'prefix' };
  if (text.length !== TOKEN_LENGTH) return { ok: false, reason: 'length' };
  if (text.charCodeAt(SEPARATOR) !== 95 /* _ */) return { ok: false, reason: 'charset' };
  const id = text.slice(ID_START, SEPARATOR);
  const secretAndSum = text.slice(SECRET_START);
  if (!BASE62.test(id) || !BASE62.test(secretAndSum)) return { ok: false, reason: 'charset' };
  const checksum = text.slice(CHECKSUM_START);
  if (checksumOf(text.slice(0, CHECKSUM_START)) !== checksum) return { ok: false, reason: 'checksum' };
  return { ok: true, id, secret: text.slice(SECRET_START, CHECKSUM_START), checksum };
}

/** The public id of a token-shaped string (prefix, length and separator in place), without checking the rest. */
export function peekId(text: string | undefined): string | undefined {
  if (!text || text.length !== TOKEN_LENGTH || !text.startsWith(TOKEN_PREFIX) || text.charCodeAt(SEPARATOR) !== 95 /* _ */) return undefined;
  return text.slice(ID_START, SEPARATOR);
}

/**
 * The cheap test for a token parsed before: given the id it was found under (see `peekId`), `text`
 * is that same token when its checksum is the same and its secret has the same hash. That
 * equality makes parseToken's charset and CRC32 work redundant, so a cache hit skips them.
 */
export function isSameToken(text: string, known: { checksum: string; hash: string }): boolean {
  return text.endsWith(known.checksum) && secretMatches(text.slice(SECRET_START, CHECKSUM_START), known.hash);
}

export function hashSecret(secret: string): string {
  // The one-shot form: about three times cheaper than createHash(), and this runs on every check.
  return hash('sha256', secret, 'hex');
}

/** Constant-time comparison of a presented secret against a stored hash (hex, so no Buffers per call). */
export function secretMatches(secret: string, storedHash: string): boolean {
  const presented = hashSecret(secret);
  if (presented.length !== storedHash.length) return false;
  let diff = 0;
  for (let i = 0; i < presented.length; i++) diff |= presented.charCodeAt(i) ^ storedHash.charCodeAt(i);
  return diff === 0;
}

/** Replaces anything that looks like a tokenwarden token with its public id only. */
export function redactTokens(text: string): string {
  return text.replace(TOKEN_PATTERN, (match) => `${match.slice(0, TOKEN_PREFIX.length + ID_LENGTH)}_[REDACTED]`);
}

/**
 * The controller tracks "the token delivered now" by id. An upstream token has none, so it gets
 * a public fingerprint: `up_` and 12 characters of its SHA-256, enough to see in the API when the
 * upstream token changed, useless for recovering it. It is never looked up among minted tokens.
 */
export function upstreamTokenId(token: string): string {
  return `up_${hash('sha256', token, 'base64url').slice(0, 12)}`;
}
