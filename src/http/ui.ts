import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

/**
 * Serves the web UI (built by `npm run build:ui` into dist/webui) from tokenwarden itself, so
 * there is no second server to run. The assets are public: they hold no data and no secret;
 * everything the UI shows comes from /api/v1 with the bearer token the user pasted.
 */

/** Two levels up from both src/http/ui.ts (tests, tsx) and dist/http/ui.js (built) is the package root. */
export const UI_DIR = fileURLToPath(new URL('../../dist/webui/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The UI holds a live bearer token in memory, so script injection is the threat that matters:
 * only our own scripts run, nothing may frame the page, and the token never leaves in a Referer.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

export function registerUi(app: FastifyInstance, dir: string = UI_DIR): void {
  const root = normalize(dir.endsWith(sep) ? dir : dir + sep);

  const send = async (reply: FastifyReply, relative: string) => {
    const file = normalize(join(root, relative));
    if (!file.startsWith(root)) return notFound(reply);
    try {
      if (!(await stat(file)).isFile()) return notFound(reply);
    } catch {
      return relative === 'index.html' ? notBuilt(reply) : notFound(reply);
    }
    // Vite names every asset after its content hash, so those may be cached forever; index.html never.
    const immutable = relative.startsWith('assets/');
    return reply
      .headers(SECURITY_HEADERS)
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .type(TYPES[extname(file)] ?? 'application/octet-stream')
      .send(await readFile(file));
  };

  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/', { schema: { hide: true }, logLevel: 'warn' }, async (_req, reply) => send(reply, 'index.html'));
  app.get<{ Params: { '*': string } }>('/ui/*', { schema: { hide: true }, logLevel: 'warn' }, async (req, reply) =>
    send(reply, req.params['*'] || 'index.html'),
  );
}

function notFound(reply: FastifyReply) {
  return reply.code(404).headers(SECURITY_HEADERS).type('text/plain; charset=utf-8').send('not found\n');
}

function notBuilt(reply: FastifyReply) {
  return reply
    .code(503)
    .headers(SECURITY_HEADERS)
    .type('text/plain; charset=utf-8')
    .send('the web UI is not built: run "npm run build" (or "npm run build:ui") and reload\n');
}
