import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rememberSecret, tempDir } from './support/output.js';
import { waitFor } from './support/wait.js';
import { spawnServe } from './support/process.js';
import { type TestServer, startTestServer } from './support/server.js';

/** Real certificates from openssl: a CA, and two server certificates for the same names. */
let dir: string;
let ca: Buffer;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

function issue(name: string, serial: string): { cert: string; key: string } {
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=DNS:tokenwarden.test,DNS:tokenwarden.monitoring.svc,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-subj', '/CN=tokenwarden.test', '-out', `${name}.csr`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', `0x${serial}`, '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

interface Seen {
  status: number;
  serial: string;
}

function get(url: string, servername: string, path = '/healthz'): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { ca, servername, agent: false }, (res) => {
      const serial = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, serial: serial.replace(/^0+/, '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

let first: { cert: string; key: string };
let second: { cert: string; key: string };
let third: { cert: string; key: string };

beforeAll(() => {
  dir = tempDir('tls');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-subj', '/CN=tokenwarden test CA', '-days', '2', '-out', 'ca.crt']);
  ca = readFileSync(join(dir, 'ca.crt'));
  first = issue('first', 'A1');
  second = issue('second', 'B2');
  third = issue('third', 'C3');
});

describe('HTTPS with certificate reload', () => {
  let server: TestServer;
  const live = { cert: '', key: '' };

  beforeAll(async () => {
    live.cert = join(dir, 'live.crt');
    live.key = join(dir, 'live.key');
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    server = await startTestServer({ config: { tls: { cert: live.cert, key: live.key, reloadInterval: '100ms' }, authListen: { port: 0 } } });
  });
  afterAll(async () => server?.close());

  it('serves HTTPS under the names in the certificate, forward-auth included', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await get(server.url, 'tokenwarden.test')).toEqual({ status: 200, serial: 'A1' });
    expect((await get(server.url, 'tokenwarden.monitoring.svc', '/auth?scope=metrics.read')).status).toBe(401);
    await expect(get(server.url, 'elsewhere.example')).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    // the authListen thread serves HTTPS from the same pair
    expect(server.tw.authUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await get(server.tw.authUrl!, 'tokenwarden.test', '/auth?scope=metrics.read')).toEqual({ status: 401, serial: 'A1' });
  });

  it('picks up a replaced certificate without a restart', async () => {
    // cert-manager style: write new files beside, then rename over the old ones
    copyFileSync(second.cert, `${live.cert}.new`);
    copyFileSync(second.key, `${live.key}.new`);
    renameSync(`${live.key}.new`, live.key);
    renameSync(`${live.cert}.new`, live.cert);
    const started = Date.now();
    const seen = await waitFor(async () => {
      const s = await get(server.url, 'tokenwarden.test');
      return s.serial === 'B2' && s;
    }, 'the new certificate', 5000, 50);
    expect(seen.status).toBe(200);
    console.log(`new certificate served ${Date.now() - started} ms after replacement`);
    await waitFor(async () => (await get(server.tw.authUrl!, 'tokenwarden.test', '/auth')).serial === 'B2', 'the authListen thread to serve the new certificate', 5000, 50);
  });

  it('keeps the last good certificate while the pair is half replaced, then takes the complete one', async () => {
    copyFileSync(third.cert, live.cert); // the key still belongs to the second certificate
    await waitFor(async () => readFileSync(server.logFile, 'utf8').includes('cannot be used yet'), 'the reloader to refuse the mismatched pair', 5000, 50);
    expect((await get(server.url, 'tokenwarden.test')).serial).toBe('B2');
    copyFileSync(third.key, live.key);
    await waitFor(async () => (await get(server.url, 'tokenwarden.test')).serial === 'C3', 'the complete new pair', 5000, 50);
  });
});

describe('tokenwarden serve with TLS from the environment', () => {
  it('follows a Kubernetes Secret volume (..data symlink swap) and prints an https URL', async () => {
    // The layout kubelet writes: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/
    const vol = join(dir, 'secret-volume');
    const put = (version: string, pair: { cert: string; key: string }) => {
      mkdirSync(join(vol, version), { recursive: true });
      copyFileSync(pair.cert, join(vol, version, 'tls.crt'));
      copyFileSync(pair.key, join(vol, version, 'tls.key'));
    };
    put('..v1', first);
    symlinkSync('..v1', join(vol, '..data'));
    symlinkSync('..data/tls.crt', join(vol, 'tls.crt'));
    symlinkSync('..data/tls.key', join(vol, 'tls.key'));
    const store = join(tempDir('tls-serve'), 'tw.db');
    const serve = await spawnServe(['--port', '0', '--store', store, '--bootstrap-token-file', join(dir, 'boot.token')], {
      TOKENWARDEN_TLS_CERT: join(vol, 'tls.crt'),
      TOKENWARDEN_TLS_KEY: join(vol, 'tls.key'),
      TOKENWARDEN_CONFIG: writeConfig(join(dir, 'serve.yaml'), 'tls:\n  cert: /ignored/because/env/wins\n  key: /ignored\n  reloadInterval: 200ms\n'),
    });
    // serve prints "listening" a moment before it writes the bootstrap file
    rememberSecret(await waitFor(async () => existsSync(join(dir, 'boot.token')) && readFileSync(join(dir, 'boot.token'), 'utf8').trim(), 'the bootstrap token', 10_000, 20));
    try {
      expect(serve.url).toMatch(/^https:/);
      expect((await get(serve.url, 'tokenwarden.test')).serial).toBe('A1');
      put('..v2', second);
      symlinkSync('..v2', join(vol, '..data_tmp'));
      renameSync(join(vol, '..data_tmp'), join(vol, '..data'));
      await waitFor(async () => (await get(serve.url, 'tokenwarden.test')).serial === 'B2', 'the swapped certificate', 5000, 50);
    } finally {
      await serve.stop();
    }
  });
});

function writeConfig(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}
