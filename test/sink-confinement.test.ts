import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { loadConfig } from '../src/config/server-config.js';
import type { DeliveryController } from '../src/delivery/controller.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, startTestServer } from './support/server.js';

/**
 * Issue 13 point 3: where a file sink may write. A real server (real SQLite, real HTTP) and real
 * files under a temp dir: API bindings only under delivery.fileRoots, never tokenwarden's own
 * files, never a symlink, never a file tokenwarden did not create unless adopt: true, and removal
 * deletes only a file that still holds what tokenwarden last wrote.
 */
const clock = new ManualClock(Date.UTC(2026, 5, 1, 8, 0, 0));
let s: TestServer;
let ctl: DeliveryController;
let base: string;
let root: string;
let outside: string;
let dataDir: string;

const readToken = (path: string) => rememberSecret(readFileSync(path, 'utf8').trim());
const auth = async (token: string) => (await s.api('GET', '/auth?scope=metrics.read', undefined, token)).status;
const tokenCount = async () => Number((await s.tw.ctx.store.kysely.selectFrom('tokens').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
const bindingRow = (name: string) => s.tw.ctx.store.kysely.selectFrom('bindings' as never).selectAll().where('name' as never, '=', name as never).executeTakeFirst() as Promise<any>;

function spec(name: string, sink: Record<string, unknown>) {
  return { name, actor: 'bot-files', scopes: ['metrics.read'], lifetime: '1h', sinks: [{ kind: 'file', ...sink }], rotation: { confirm: 'none', grace: '0s' } };
}

/** A refused create: the status, the field, nothing stored and no token minted. */
async function refused(name: string, sink: Record<string, unknown>, status: number): Promise<any> {
  const before = await tokenCount();
  const res = await s.api('POST', '/api/v1/bindings', spec(name, sink));
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.field).toBe('sinks.0.path');
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  expect((await s.api('GET', `/api/v1/bindings/${name}`)).status).toBe(404);
  expect(await tokenCount()).toBe(before);
  return res.body;
}

async function startServer(adminToken?: string): Promise<TestServer> {
  return startTestServer({
    clock,
    dbPath: join(dataDir, 'tokenwarden.db'),
    adminToken,
    config: { delivery: { fileRoots: [root] }, verify: { failureLimit: 100_000 } },
    delivery: { autoStart: false, retryBaseMs: 1000, pollMs: 1000 },
  });
}

beforeAll(async () => {
  base = tempDir('confine');
  root = join(base, 'root');
  outside = join(base, 'outside');
  // The data dir sits inside the root on purpose: being under a root never opens tokenwarden's own files.
  dataDir = join(root, '.data');
  for (const d of [root, outside, dataDir]) mkdirSync(d, { recursive: true });
  s = await startServer();
  ctl = s.tw.ctx.delivery!;
  expect((await s.api('POST', '/api/v1/actors', { name: 'bot-files', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
});
afterAll(async () => s?.close());

describe('API file sinks without delivery.fileRoots', () => {
  it('are refused with 403 naming sinks.0.path and the setting; nothing written, no token minted', async () => {
    const bare = await startTestServer({ clock, delivery: { autoStart: false } });
    try {
      expect((await bare.api('POST', '/api/v1/actors', { name: 'bot-files', kind: 'service', roles: ['metrics-read'] })).status).toBe(201);
      const path = join(outside, 'no-roots.token');
      const count = async () => (await bare.tw.ctx.store.kysely.selectFrom('tokens').select('id').execute()).length;
      const before = await count();
      const res = await bare.api('POST', '/api/v1/bindings', spec('no-roots', { path }));
      expect(res.status, JSON.stringify(res.body)).toBe(403);
      expect(res.body.field).toBe('sinks.0.path');
      expect(res.body.detail).toContain('delivery.fileRoots');
      expect(existsSync(path)).toBe(false);
      expect((await bare.api('GET', '/api/v1/bindings/no-roots')).status).toBe(404);
      expect(await count()).toBe(before);
    } finally {
      await bare.close();
    }
  });
});

describe('API file sinks with delivery.fileRoots', () => {
  it('under a root: written, mode 0600, a working token', async () => {
    const path = join(root, 'scrape.token');
    const res = await s.api('POST', '/api/v1/bindings', spec('under-root', { path }));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await auth(readToken(path))).toBe(200);
  });

  it('in a subdirectory of a root: written', async () => {
    mkdirSync(join(root, 'team', 'prom'), { recursive: true });
    const path = join(root, 'team', 'prom', 'token');
    expect((await s.api('POST', '/api/v1/bindings', spec('sub-root', { path }))).status).toBe(201);
    expect(await auth(readToken(path))).toBe(200);
  });

  it('outside the roots: 403 naming the roots', async () => {
    const path = join(outside, 'x.token');
    const body = await refused('outside', { path }, 403);
    expect(body.detail).toContain('outside delivery.fileRoots');
    expect(body.detail).toContain(root);
    expect(existsSync(path)).toBe(false);
  });

  it('a ".." escape from a root: refused, nothing created', async () => {
    const path = `${root}/../outside/escape.token`;
    const body = await refused('escape', { path }, 403);
    expect(body.detail).toContain('outside delivery.fileRoots');
    expect(existsSync(join(outside, 'escape.token'))).toBe(false);
  });

  it('at delivery.key or anywhere in the data dir: refused, the key untouched, and the server restarts fine', async () => {
    const key = join(dataDir, 'delivery.key');
    const keyBefore = readFileSync(key);
    const body = await refused('at-key', { path: key, adopt: true }, 403);
    expect(body.detail).toContain("tokenwarden's own data directory");
    expect(readFileSync(key).equals(keyBefore)).toBe(true);
    await refused('at-db', { path: join(dataDir, 'tokenwarden.db'), adopt: true }, 403);
    await refused('in-data-dir', { path: join(dataDir, 'new.token') }, 403);
    expect(existsSync(join(dataDir, 'new.token'))).toBe(false);
    // Through a symlinked directory inside the root that leads into the data dir: judged by where it really leads.
    symlinkSync(dataDir, join(root, 'data-link'));
    await refused('via-link', { path: join(root, 'data-link', 'delivery.key'), adopt: true }, 403);
    expect(readFileSync(key).equals(keyBefore)).toBe(true);

    const admin = s.adminToken;
    await s.close();
    s = await startServer(admin);
    ctl = s.tw.ctx.delivery!;
    expect((await s.api('GET', '/api/v1/bindings/under-root')).status).toBe(200);
    expect(readFileSync(key).equals(keyBefore)).toBe(true);
  });

  it('at a symlink: 400, the link and its target untouched', async () => {
    const target = join(outside, 'precious.txt');
    writeFileSync(target, 'precious\n');
    const link = join(root, 'link.token');
    symlinkSync(target, link);
    const body = await refused('at-link', { path: link, adopt: true }, 400);
    expect(body.detail).toContain('symbolic link');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
  });

  it('through a symlinked directory leading outside the roots: 403, nothing written there', async () => {
    symlinkSync(outside, join(root, 'out-link'));
    const body = await refused('dir-link', { path: join(root, 'out-link', 'sneaky.token') }, 403);
    expect(body.detail).toContain('outside delivery.fileRoots');
    expect(existsSync(join(outside, 'sneaky.token'))).toBe(false);
  });

  it('at an existing file tokenwarden did not create: 409 naming the file, untouched; adopt: true replaces it', async () => {
    const path = join(root, 'foreign.conf');
    writeFileSync(path, 'not a token\n', { mode: 0o644 });
    const body = await refused('foreign', { path }, 409);
    expect(body.detail).toContain(path);
    expect(body.detail).toContain('adopt: true');
    expect(readFileSync(path, 'utf8')).toBe('not a token\n');

    const res = await s.api('POST', '/api/v1/bindings', spec('adopted', { path, adopt: true }));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(await auth(readToken(path))).toBe(200);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('a file the binding delivered is its own: changed by hand, the next delivery replaces it', async () => {
    const path = join(root, 'own.token');
    expect((await s.api('POST', '/api/v1/bindings', spec('own', { path }))).status).toBe(201);
    writeFileSync(path, 'edited\n');
    const res = await s.api('POST', '/api/v1/bindings/own/rotate');
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    await ctl.tick();
    expect(await auth(readToken(path))).toBe(200);
    expect((await s.api('GET', '/api/v1/bindings/own')).body).toMatchObject({ state: 'active', lastError: null });
  });

  it('a target replaced by a symlink between deliveries: the rotation fails with the reason, the link target untouched', async () => {
    const path = join(root, 'swapped.token');
    expect((await s.api('POST', '/api/v1/bindings', spec('swapped', { path }))).status).toBe(201);
    const good = readToken(path);
    const target = join(outside, 'victim.txt');
    writeFileSync(target, 'victim\n');
    rmSync(path);
    symlinkSync(target, path);
    expect((await s.api('POST', '/api/v1/bindings/swapped/rotate')).status).toBe(202);
    await ctl.tick();
    const b = (await s.api('GET', '/api/v1/bindings/swapped')).body;
    expect(b.state).toBe('failing');
    expect(b.lastError).toContain('symbolic link');
    expect(readFileSync(target, 'utf8')).toBe('victim\n');
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
    expect(await auth(good)).toBe(200); // the old token stays valid while delivery fails
  });
});

describe('removal deletes only what tokenwarden last wrote', () => {
  it('an untouched file is deleted with the binding', async () => {
    const path = join(root, 'untouched.token');
    expect((await s.api('POST', '/api/v1/bindings', spec('untouched', { path }))).status).toBe(201);
    const token = readToken(path);
    const row = await bindingRow('untouched');
    expect(JSON.parse(row.delivered)[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(row.delivered).not.toContain(token);
    expect((await s.api('DELETE', '/api/v1/bindings/untouched')).status).toBe(200);
    expect(existsSync(path)).toBe(false);
    expect(await auth(token)).toBe(401);
  });

  it('a file someone changed is left in place, and the audit log says why', async () => {
    const path = join(root, 'edited.token');
    expect((await s.api('POST', '/api/v1/bindings', spec('edited', { path }))).status).toBe(201);
    const token = readToken(path);
    writeFileSync(path, 'someone else now keeps something here\n');
    expect((await s.api('DELETE', '/api/v1/bindings/edited')).status).toBe(200);
    expect(readFileSync(path, 'utf8')).toBe('someone else now keeps something here\n');
    expect(await auth(token)).toBe(401); // the binding's token is revoked all the same
    const audit = (await s.api('GET', '/api/v1/audit?action=binding.removed')).body.items as any[];
    const removed = audit.find((a) => a.targetId === 'edited');
    expect(JSON.stringify(removed)).toContain('was changed since tokenwarden last wrote it');
  });

  it('a sink dropped from the spec: deleted when untouched, left when changed', async () => {
    const a = join(root, 'drop-a.token');
    const b = join(root, 'drop-b.token');
    const keep = join(root, 'drop-keep.token');
    const both = { ...spec('dropping', { path: keep }), sinks: [{ kind: 'file', path: keep }, { kind: 'file', path: a }, { kind: 'file', path: b }] };
    expect((await s.api('POST', '/api/v1/bindings', both)).status).toBe(201);
    writeFileSync(b, 'changed by hand\n');
    const res = await s.api('PUT', '/api/v1/bindings/dropping', spec('dropping', { path: keep }));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(existsSync(a)).toBe(false);
    expect(readFileSync(b, 'utf8')).toBe('changed by hand\n');
    expect(await auth(readToken(keep))).toBe(200);
  });
});

describe('bindings from the configuration file', () => {
  it('may name a path outside the roots, but never tokenwarden\'s own files', async () => {
    const svc = s.tw.ctx.bindings!;
    const free = join(outside, 'from-config.token');
    const key = join(dataDir, 'delivery.key');
    const keyBefore = readFileSync(key);
    const yaml = join(base, 'tokenwarden.yaml');
    writeFileSync(
      yaml,
      [
        'bindings:',
        '  - { name: cfg-free, actor: bot-files, scopes: [metrics.read], lifetime: 1h, sinks: [{ kind: file, path: ' + free + ' }], rotation: { confirm: none } }',
        '  - { name: cfg-key, actor: bot-files, scopes: [metrics.read], lifetime: 1h, sinks: [{ kind: file, path: ' + key + ', adopt: true }], rotation: { confirm: none } }',
        '',
      ].join('\n'),
    );
    const config = loadConfig({ file: yaml, env: {} });
    const result = await svc.reconcileConfig(config.bindings);
    expect(result.created.sort()).toEqual(['cfg-free', 'cfg-key']);
    expect(result.problems.join('\n')).toContain("tokenwarden's own data directory");
    await ctl.tick();
    expect(await auth(readToken(free))).toBe(200);
    const broken = (await s.api('GET', '/api/v1/bindings/cfg-key')).body;
    expect(broken.state).toBe('failing');
    expect(broken.lastError).toContain("tokenwarden's own data directory");
    expect(readFileSync(key).equals(keyBefore)).toBe(true);

    await svc.reconcileConfig([]);
    await ctl.tick();
    expect(existsSync(free)).toBe(false);
    expect(readFileSync(key).equals(keyBefore)).toBe(true);
  });

  it('TOKENWARDEN_DELIVERY_FILE_ROOTS is a comma or colon separated list of absolute directories', () => {
    expect(loadConfig({ env: { TOKENWARDEN_DELIVERY_FILE_ROOTS: '/srv/a,/srv/b:/srv/c' } }).delivery.fileRoots).toEqual(['/srv/a', '/srv/b', '/srv/c']);
    expect(loadConfig({ env: {} }).delivery.fileRoots).toEqual([]);
    expect(() => loadConfig({ env: { TOKENWARDEN_DELIVERY_FILE_ROOTS: 'relative/dir' } })).toThrow(/delivery\.fileRoots\[0\] \(from TOKENWARDEN_DELIVERY_FILE_ROOTS\): "relative\/dir" is not an absolute directory/);
  });
});
