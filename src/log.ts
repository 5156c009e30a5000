import pino, { type DestinationStream, type Logger } from 'pino';
import { redactTokens } from './token/format.js';

export type { Logger };

/** Field names that may carry a credential anywhere in a log object. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  '*.authorization',
  '*.token',
  '*.plaintext',
  '*.password',
  '*.secret',
  '*.clientSecret',
  '*.client_secret',
  '*.refreshToken',
  '*.refresh_token',
  '*.access_token',
  // Upstream source credentials (src/sources): CPD api_key, OIDC id_token, OAuth2 assertions.
  '*.api_key',
  '*.apiKey',
  '*.id_token',
  '*.accessToken',
  '*.assertion',
  'token',
  'plaintext',
  'password',
  'secret',
];

/**
 * A pino logger that never writes a secret: known fields are censored, and any string that
 * looks like a tokenwarden token (in a message or a URL) keeps only its public id.
 */
export function createLogger(options: { level?: string; stream?: DestinationStream; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'tokenwarden',
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++) if (typeof args[i] === 'string') args[i] = redactTokens(args[i] as string);
          return method.apply(this, args as Parameters<typeof method>);
        },
      },
      serializers: {
        req: (req: { method?: string; url?: string; ip?: string; clientIp?: string | null; id?: string; headers?: Record<string, unknown>; raw?: { tokenwardenPeer?: { address: string | null } } }) => ({
          method: req.method,
          url: redactUrl(req.url ?? ''),
          // The API's request decorates clientIp (the one source-address rule); a bare request has only its peer.
          // Behind the front (verify/peer.ts) the socket is the private one: the client is the front's peer.
          remoteAddress: req.clientIp ?? req.raw?.tokenwardenPeer?.address ?? req.ip,
          userAgent: typeof req.headers?.['user-agent'] === 'string' ? redactTokens(req.headers['user-agent']) : undefined,
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
        // Callers pass Errors or already-safe strings; either way only a redacted message is kept.
        err: (err: unknown) => (err instanceof Error ? { type: err.name, message: redactTokens(String(err.message)) } : { message: redactTokens(String(err)) }),
      },
    },
    options.stream,
  );
}

/** Query values can carry credentials (`?access_token=`); keep the keys, drop suspicious values. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return redactTokens(url);
  const params = new URLSearchParams(url.slice(q + 1));
  for (const [key] of params) if (/token|secret|password|key|auth|code/i.test(key)) params.set(key, '[REDACTED]');
  return redactTokens(`${url.slice(0, q)}?${params.toString()}`);
}
