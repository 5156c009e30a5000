import { isIP } from 'node:net';

/**
 * Why an entry of `verify.trustedProxies` is not usable, or undefined when it is an IP or a CIDR
 * block: checked at configuration load; verify/request-origin.ts builds the trust from the entries it accepts.
 */
export function trustedProxyProblem(entry: string): string | undefined {
  const [addr, bits, ...rest] = entry.split('/');
  const family = isIP(addr ?? '');
  if (!family || rest.length) return `"${entry}" is not an IP address or CIDR block (e.g. 10.0.0.0/8, 127.0.0.1, ::1)`;
  if (bits === undefined) return undefined;
  const n = /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(n >= 0 && n <= (family === 4 ? 32 : 128))) return `"${entry}" has an invalid prefix length (0–${family === 4 ? 32 : 128})`;
  return undefined;
}

