import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliError } from '../src/cli/client.cjs';

/**
 * The CLI's HTTP client writes and reads its one HTTP/1.1 exchange itself (client.cts): here against
 * node:http servers answering with each framing a server may use. The built module, as the CLI
 * runs it (the test setup builds dist/; vite does not compile .cts files).
 */
const { ApiClient, EXIT, parseResponse } = createRequire(import.meta.url)('../dist/cli/client.cjs') as typeof import('../src/cli/client.cjs');
type ApiClient = InstanceType<typeof ApiClient>;
let server: Server | undefined;
afterEach(() => new Promise<void>((done) => (server ? server.close(() => done()) : done())));

async function serve(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<string> {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => handler(req, body, res));
  });
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('the CLI HTTP client', () => {
  it('sends method, path under the server prefix, query, headers and a JSON body as node:http would', async () => {
    let seen: { method?: string; url?: string; headers: Record<string, unknown>; body: string } = { headers: {}, body: '' };
    const url = await serve((req, body, res) => {
      seen = { method: req.method, url: req.url, headers: req.headers, body };
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: 'é' }));
    });
    const client = new ApiClient({ server: `${url}/prefix`, token: 'twd_secret' });
    expect(await client.request('POST', '/api/v1/tokens?state=active', { name: 'ünï' })).toEqual({ ok: 'é' });
    expect(seen).toMatchObject({ method: 'POST', url: '/prefix/api/v1/tokens?state=active', body: '{"name":"ünï"}' });
    expect(seen.headers).toMatchObject({
      host: url.slice('http://'.length),
      authorization: 'Bearer twd_secret',
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength('{"name":"ünï"}')),
      connection: 'close',
    });
  });

  it('reads chunked answers written in several pieces, and content-length ones', async () => {
    const items = Array.from({ length: 2000 }, (_, i) => ({ id: `t${i}`, name: 'x'.repeat(i % 50) }));
    const url = await serve((req, _body, res) => {
      const text = JSON.stringify({ items });
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'application/json' }); // no length: node:http sends it chunked
        for (let i = 0; i < text.length; i += 7000) res.write(text.slice(i, i + 7000));
        res.end();
      } else res.writeHead(200, { 'content-length': Buffer.byteLength(text) }).end(text);
    });
    const client = new ApiClient({ server: url, token: 't' });
    expect((await client.request('GET', '/chunked')).items).toEqual(items);
    expect((await client.request('GET', '/length')).items).toEqual(items);
  });

  it('turns error answers into the exit code of their kind, with the server detail', async () => {
    const url = await serve((req, _body, res) => {
      const status = Number(req.url!.slice(1));
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 404 ? JSON.stringify({ detail: 'no token t1' }) : '');
    });
    const client = new ApiClient({ server: url, token: 't' });
    const fail = (path: string) => client.request('GET', path).then(() => undefined, (err: CliError) => [err.message, err.exitCode]);
    expect(await fail('/404')).toEqual(['error 404: no token t1', EXIT.usage]);
    expect(await fail('/403')).toEqual(['error 403: 403 Forbidden', EXIT.auth]);
    expect(await fail('/503')).toEqual(['error 503: 503 Service Unavailable', EXIT.server]);
  });

  it('refuses a token that would end the header line, and says when nothing listens', async () => {
    const url = await serve((_req, _body, res) => res.end('{}'));
    const err = (client: ApiClient) => client.request('GET', '/x').then(() => undefined, (e: CliError) => [e.message, e.exitCode]);
    expect(await err(new ApiClient({ server: url, token: 't\r\nx-injected: 1' }))).toEqual([expect.stringContaining('(ERR_INVALID_CHAR)'), EXIT.unreachable]);
    await new Promise<void>((done) => server!.close(() => done()));
    server = undefined;
    expect(await err(new ApiClient({ server: url, token: 't' }))).toEqual([expect.stringContaining('(ECONNREFUSED)'), EXIT.unreachable]);
  });

  it('frames what the server sent: interim answers skipped, no body for 204, cut answers refused', () => {
    const raw = (s: string) => Buffer.from(s, 'latin1');
    expect(parseResponse(raw('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}'))).toEqual({ status: 200, statusText: 'OK', text: '{}' });
    expect(parseResponse(raw('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n')).text).toBe('abc0123456789');
    expect(parseResponse(raw('HTTP/1.1 204 No Content\r\n\r\n'))).toEqual({ status: 204, statusText: 'No Content', text: '' });
    expect(parseResponse(raw('HTTP/1.0 200 OK\r\n\r\nto the end'))).toMatchObject({ text: 'to the end' });
    expect(() => parseResponse(raw('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort'))).toThrow(/in the middle/);
    expect(() => parseResponse(raw('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab'))).toThrow(/in the middle/);
    expect(() => parseResponse(raw('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n'))).toThrow(/malformed chunk/);
    expect(() => parseResponse(raw(''))).toThrow(/without an answer/);
    expect(() => parseResponse(raw('SSH-2.0-OpenSSH\r\n\r\n'))).toThrow(/not HTTP/);
  });
});
