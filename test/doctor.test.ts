import { execFileSync } from 'node:child_process';
import { type Server, createServer as createHttpsServer } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_PRINCIPAL } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import { mintToken } from '../src/token/format.js';
import { type CliResult, runCli } from './support/cli.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, startTestServer } from './support/server.js';

const HOUR = 3_600_000;
const clock = new ManualClock(Date.UTC(2026, 0, 1));
const dir = tempDir('doctor');
let s: TestServer;
let env: Record<string, string>;
let k8s: KubernetesEmulator;
let kubeconfig: string;
const secrets: string[] = [];

async function mint(actor: string, scopes: string[], lifetimeMs = 30 * 24 * HOUR): Promise<{ id: string; token: string }> {
  const a = s.tw.ctx.authority;
  await a.createActor(SYSTEM_PRINCIPAL, { name: actor, kind: 'service', scopes }).catch(() => undefined);
  const c = await a.createToken(SYSTEM_PRINCIPAL, { actor, name: `t${secrets.length}`, scopes, lifetimeMs });
  secrets.push(rememberSecret(c.plaintext));
  return { id: c.token.id, token: c.plaintext };
}

/** Runs `tokenwarden doctor`, feeding the token on stdin unless the args name another source. */
async function doctor(args: string[], stdin?: string, extraEnv: Record<string, string> = {}): Promise<CliResult> {
  const r = await runCli(['doctor', ...args], { ...env, ...extraEnv }, stdin);
  for (const t of secrets) {
    const secretPart = t.slice(17, 60);
    expect(r.stdout + r.stderr).not.toContain(secretPart);
  }
  return r;
}

beforeAll(async () => {
  s = await startTestServer({ clock, config: { verify: { failureLimit: 10_000 } } });
  env = { TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: s.adminToken };
  k8s = await startKubernetesEmulator({ namespaces: ['default', 'monitoring'] });
  kubeconfig = k8s.writeKubeconfig({ dir });
});
afterAll(async () => {
  await s?.close();
  await k8s?.stop();
});

describe('tokenwarden doctor: what is wrong with the token', () => {
  it('works: says so, with expiry, and exits 0', async () => {
    const { id, token } = await mint('bot-ok', ['metrics.read']);
    const r = await doctor(['--scope', 'metrics.read'], token);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Token twd_${id}_… (from stdin)`);
    expect(r.stdout).toContain(`WORKS: token ${id} ("t0" of bot-ok) is valid and holds metrics.read; it expires on 2026-01-31T00:00:00.000Z (in 30d)`);
  });

  it('malformed: names the part at fault (checksum, prefix, length) without asking storage', async () => {
    const { token } = await mint('bot-typo', ['metrics.read']);
    const typo = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    const r = await doctor([], typo);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('REFUSED (401, malformed): the token is malformed (checksum): the checksum does not match: the token was mistyped, truncated or altered');
    expect((await doctor([], 'ghp_abcdefghijklmnopqrstuvwxyz0123456789')).stdout).toContain('(prefix): the token does not start with "twd_"');
    expect((await doctor([], token.slice(0, 40))).stdout).toContain('(length): the token has the wrong length');
  });

  it('unknown: well-formed but never issued here', async () => {
    const foreign = rememberSecret(mintToken().plaintext);
    secrets.push(foreign);
    const r = await doctor([], foreign);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`REFUSED (401, unknown): no token with the id ${foreign.slice(4, 16)} exists in this tokenwarden`);
  });

  it('revoked: when, by whom and why, and the successor', async () => {
    const { id, token } = await mint('bot-rev', ['metrics.read']);
    await s.api('POST', `/api/v1/tokens/${id}/revoke`, { reason: 'leaked in a CI log' });
    const r = await doctor([], token);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`REFUSED (401, revoked): token ${id} ("t`);
    expect(r.stdout).toContain(`was revoked on 2026-01-01T00:00:00.000Z by admin (reason: leaked in a CI log)`);

    const second = await mint('bot-rev2', ['metrics.read']);
    const successor = await s.api('POST', `/api/v1/tokens/${second.id}/replace`, {});
    const r2 = await doctor([], second.token);
    expect(r2.stdout).toContain(`To fix: its successor is token ${successor.body.id}: give the client that one.`);
  });

  it('expired: when, and how long ago', async () => {
    const { id, token } = await mint('bot-exp', ['metrics.read'], HOUR);
    clock.advance(3 * HOUR);
    const r = await doctor([], token);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`REFUSED (401, expired): token ${id}`);
    expect(r.stdout).toContain('expired on 2026-01-01T01:00:00.000Z, 2h ago');
    expect(r.stdout).toContain(`To fix: replace it with a fresh one: tokenwarden token replace ${id}`);
  });

  it('missing scope: which one, and which roles grant it', async () => {
    await s.api('POST', '/api/v1/scopes', { name: 'write:sasquatch' });
    await s.api('POST', '/api/v1/roles', { name: 'sasquatch-writer', scopes: ['write:sasquatch'] });
    const { token } = await mint('bot-writer', ['metrics.read']);
    const r = await doctor(['--scope', 'write:sasquatch'], token);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('FORBIDDEN (403, insufficient_scope)');
    expect(r.stdout).toContain('the token was minted without "write:sasquatch" (the role sasquatch-writer grants it)');
    const j = await runCli(['-o', 'json', 'doctor', '--scope', 'write:sasquatch'], env, token);
    expect(JSON.parse(j.stdout).diagnosis.scopes).toEqual({
      required: ['write:sasquatch'],
      satisfy: 'all',
      missing: ['write:sasquatch'],
      rolesGranting: { 'write:sasquatch': ['sasquatch-writer'] },
      droppedFromIdentity: [],
    });
  });

  it('missing scope because the identity lost the role that granted it', async () => {
    await s.api('POST', '/api/v1/actors', { name: 'bot-demoted', kind: 'service', roles: ['metrics-read'] });
    const c = await s.api('POST', '/api/v1/tokens', { actor: 'bot-demoted', name: 'scrape', scopes: ['metrics.read'] });
    secrets.push(c.body.token);
    await s.api('PATCH', '/api/v1/actors/bot-demoted', { roles: [] });
    const r = await doctor(['--scope', 'metrics.read'], c.body.token);
    expect(r.stdout).toContain('"metrics.read" is on the token but bot-demoted no longer holds it (the roles admin, metrics-read, operator grant it)');
    expect(r.stdout).toContain('To fix: grant bot-demoted a role holding metrics.read again');
  });

  it('identity disabled', async () => {
    const { token } = await mint('bot-off', ['metrics.read']);
    await s.api('PATCH', '/api/v1/actors/bot-off', { disabled: true });
    const r = await doctor([], token);
    expect(r.stdout).toContain('REFUSED (401, disabled): the identity bot-off is disabled or deleted');
  });

  it('only for holders of admin:token or token.introspect', async () => {
    const { token } = await mint('bot-nosy', ['metrics.read']);
    const denied = await s.api('POST', '/api/v1/doctor', { token }, token);
    expect(denied.status).toBe(403);
    const intro = await mint('bot-introspector', ['token.introspect']);
    const allowed = await s.api('POST', '/api/v1/doctor', { token }, intro.token);
    expect(allowed.status).toBe(200);
    expect(allowed.body).toMatchObject({ status: 200, reason: 'ok' });
    expect(JSON.stringify(allowed.body)).not.toContain(token.slice(17));
  });
});

describe('tokenwarden doctor at a URL', () => {
  it('wrong header: a value written as "Token …" is sent as such, refused, and would work as Bearer', async () => {
    const { token } = await mint('bot-scheme', ['metrics.read']);
    const r = await doctor(['--url', `${s.url}/auth?scope=metrics.read`], `Token ${token}`);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('Note: the value is written as "Token …"; tokenwarden only accepts "Authorization: Bearer <token>"');
    expect(r.stdout).toContain(`Sent "authorization: Token twd_${token.slice(4, 16)}_…": the endpoint answered 401 with a bare Bearer challenge: it received no bearer token at all.`);
    expect(r.stdout).toContain('Sent as "Authorization: Bearer …" instead, it works: make the client send the Bearer scheme.');
  });

  it('a Secret value that already holds "Bearer " is named', async () => {
    const { token } = await mint('bot-double', ['metrics.read']);
    const file = join(dir, 'double.txt');
    writeFileSync(file, `Bearer ${token}\n`);
    const r = await doctor(['--file', file]);
    expect(r.stdout).toContain('Note: the value already contains "Bearer "; a Secret for bearerTokenSecret or a credentials_file must hold only the token');
  });

  it('403 at the URL: the required scope is read from the challenge and explained', async () => {
    const { token } = await mint('bot-noscope', ['token.introspect']);
    const r = await doctor(['--url', `${s.url}/auth?scope=metrics.read`], token);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('the endpoint accepts the token but requires the scope "metrics.read" (403, insufficient_scope)');
    expect(r.stdout).toContain('FORBIDDEN (403, insufficient_scope)');
    expect(r.stdout).toContain('(the roles admin, metrics-read, operator grant it)');
  });

  it('401 at the URL for an expired token carries the endpoint\'s own words', async () => {
    const { token } = await mint('bot-old', ['metrics.read'], HOUR);
    clock.advance(2 * HOUR);
    const r = await doctor(['--url', `${s.url}/auth?scope=metrics.read`], token);
    expect(r.stdout).toMatch(/the endpoint refused the token \(401, invalid_token\): .*expired/);
  });

  it('TLS: a certificate for another name is explained, and --server-name fixes it', async () => {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=other-name',
      '-addext', 'subjectAltName=DNS:other-name', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'),
    ], { stdio: 'ignore' });
    const { token } = await mint('bot-tls', ['metrics.read']);
    const server: Server = createHttpsServer({ cert: readFileSync(join(dir, 'tls.crt')), key: readFileSync(join(dir, 'tls.key')) }, (req, res) => {
      if (req.headers.authorization === `Bearer ${token}`) res.writeHead(200).end('ok');
      else res.writeHead(401, { 'www-authenticate': 'Bearer realm="exporter", error="invalid_token"' }).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as { port: number }).port}/metrics`;
    try {
      const mismatch = await doctor(['--url', url, '--ca', join(dir, 'tls.crt')], token);
      expect(mismatch.code).toBe(3);
      expect(mismatch.stdout).toContain('TLS: the certificate at 127.0.0.1');
      expect(mismatch.stdout).toContain('is for "other-name", not for "127.0.0.1"');
      expect(mismatch.stdout).toContain('tls_config.server_name: other-name');
      expect(mismatch.stdout).not.toContain('not trusted');

      const untrusted = await doctor(['--url', url], token);
      expect(untrusted.stdout).toContain('the certificate is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT): it is self-signed');

      const fixed = await doctor(['--url', url, '--ca', join(dir, 'tls.crt'), '--server-name', 'other-name'], token);
      expect(fixed.code, fixed.stdout).toBe(0);
      expect(fixed.stdout).toContain('the endpoint accepted the token (HTTP 200)');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('tokenwarden doctor: where the token is read from', () => {
  it('a Kubernetes Secret key: works, Secret missing, key missing', async () => {
    const { token } = await mint('bot-k8s', ['metrics.read']);
    k8s.seed('secrets', { metadata: { name: 'prometheus-bearer-token', namespace: 'monitoring' }, stringData: { token } });
    k8s.seed('secrets', { metadata: { name: 'wrong-key', namespace: 'monitoring' }, stringData: { bearer: token, other: 'x' } });
    const ok = await doctor(['--k8s-secret', 'monitoring/prometheus-bearer-token#token', '--kubeconfig', kubeconfig]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain('(from Kubernetes Secret key monitoring/prometheus-bearer-token#token)');

    const missing = await doctor(['--k8s-secret', 'monitoring/prometheus-token#token', '--kubeconfig', kubeconfig]);
    expect(missing.code).toBe(3);
    expect(missing.stdout).toContain('Secret "monitoring/prometheus-token" does not exist');

    const noKey = await doctor(['--k8s-secret', 'monitoring/wrong-key#token', '--kubeconfig', kubeconfig]);
    expect(noKey.stdout).toContain('Secret "monitoring/wrong-key" has no key "token"; it has "bearer", "other"');
  });

  it('a file or an environment variable that is not there', async () => {
    const noFile = await doctor(['--file', join(dir, 'nope.txt')]);
    expect(noFile.code).toBe(3);
    expect(noFile.stdout).toContain(`the file ${join(dir, 'nope.txt')} does not exist`);
    const noEnv = await doctor(['--env', 'SCRAPE_TOKEN']);
    expect(noEnv.stdout).toContain('the environment variable SCRAPE_TOKEN is not set');
    const { token } = await mint('bot-env', ['metrics.read']);
    const fromEnv = await doctor(['--env', 'SCRAPE_TOKEN'], undefined, { SCRAPE_TOKEN: token });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stdout).toContain('(from environment variable SCRAPE_TOKEN)');
  });

  it('without server access it still checks the format', async () => {
    const { token } = await mint('bot-offline', ['metrics.read']);
    const r = await runCli(['doctor'], { TOKENWARDEN_SERVER: s.url }, token.slice(0, -2) + 'zz');
    expect(r.stdout).toContain('tokenwarden could not be asked');
    expect(r.stdout).toContain('REFUSED (401, malformed)');
  });
});
