import { createHmac, timingSafeEqual } from 'node:crypto';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_PRINCIPAL } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import type { Notifier } from '../src/observe/notify.js';
import { TOKEN_PATTERN } from '../src/token/format.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, startTestServer } from './support/server.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const HMAC_KEY = rememberSecret('webhook-hmac-key-for-tests-0123456789');

/** A real webhook receiver on 127.0.0.1 that can be told to fail. */
interface Received {
  headers: IncomingHttpHeaders;
  raw: string;
  body: any;
}
let receiver: Server;
const received: Received[] = [];
let failNext = 0;
let hits = 0;

const clock = new ManualClock(Date.UTC(2026, 0, 1));
const dir = tempDir('notify');
let s: TestServer;
const secrets: string[] = [];

const notifier = (): Notifier => s.tw.ctx.notifier!;
/** Moves past the check interval and runs one round, as the timer would. */
async function round(advanceMs = HOUR): Promise<void> {
  clock.advance(advanceMs);
  await notifier().tick();
}
const ofKind = (kind: string) => received.filter((r) => r.body.kind === kind);

async function start(): Promise<TestServer> {
  return startTestServer({
    clock,
    dbPath: join(dir, 'tw.db'),
    adminToken: s?.adminToken,
    config: {
      notifications: {
        webhookUrl: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`,
        secretFile: join(dir, 'hmac.key'),
        expiryWarning: '7d',
        unusedFor: '30d',
        checkInterval: '1h',
        retryAttempts: 3,
        retryBackoff: '1m',
        repeatAfter: '24h',
      },
    },
  });
}

beforeAll(async () => {
  writeFileSync(join(dir, 'hmac.key'), `${HMAC_KEY}\n`, { mode: 0o600 });
  receiver = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      hits++;
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end('busy');
        return;
      }
      received.push({ headers: req.headers, raw, body: JSON.parse(raw) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  s = await start();
  await notifier().tick(); // the first round at start finds nothing
});
afterAll(async () => {
  await s?.close();
  await new Promise((r) => receiver.close(r));
});

async function mint(name: string, lifetimeMs: number, bindingId?: string) {
  await s.tw.ctx.authority.createActor(SYSTEM_PRINCIPAL, { name: `bot-${name}`, kind: 'service', roles: ['metrics-read'] }).catch(() => undefined);
  const c = await s.tw.ctx.authority.createToken(SYSTEM_PRINCIPAL, { actor: `bot-${name}`, name, scopes: ['metrics.read'], lifetimeMs, bindingId });
  secrets.push(rememberSecret(c.plaintext));
  return c.token;
}

function verifySignature(r: Received): boolean {
  const header = String(r.headers['x-tokenwarden-signature'] ?? '');
  const expected = `sha256=${createHmac('sha256', HMAC_KEY).update(r.raw).digest('hex')}`;
  return header.length === expected.length && timingSafeEqual(Buffer.from(header), Buffer.from(expected));
}

describe('webhook notifications', () => {
  it('sends one signed notice days before an unmanaged token expires, none for a managed one', async () => {
    const soon = await mint('soon', 5 * DAY);
    await mint('managed', 5 * DAY, 'binding-1');
    await mint('later', 60 * DAY);
    await round();
    expect(ofKind('token.expiring').map((r) => r.body.token.id)).toEqual([soon.id]);
    const notice = ofKind('token.expiring')[0]!;
    expect(notice.headers['content-type']).toBe('application/json');
    expect(notice.headers['x-tokenwarden-event']).toBe('token.expiring');
    expect(verifySignature(notice)).toBe(true);
    expect(verifySignature({ ...notice, raw: notice.raw.replace('soon', 'sooo') })).toBe(false);
    expect(notice.body).toMatchObject({
      kind: 'token.expiring',
      source: 'tokenwarden',
      token: { id: soon.id, name: 'soon', actor: 'bot-soon', managed: false, expiresAt: soon.expiresAt },
    });
    expect(notice.body.summary).toContain(`Token ${soon.id} (soon) of bot-soon expires in 5d`);
  });

  it('does not send it again: not on the next round, not after a restart', async () => {
    await round();
    await round(6 * HOUR);
    expect(ofKind('token.expiring')).toHaveLength(1);
    await s.close();
    s = await start();
    await round();
    expect(ofKind('token.expiring')).toHaveLength(1);
  });

  it('retries a failing webhook with backoff on the clock, then delivers', async () => {
    failNext = 2;
    hits = 0;
    const t = await mint('retry', 3 * DAY);
    await round(); // attempt 1: 503
    expect(hits).toBe(1);
    await notifier().tick(); // not due yet
    clock.advance(30_000);
    await notifier().tick();
    expect(hits).toBe(1);
    clock.advance(30_000); // 1m backoff: attempt 2, 503
    await notifier().tick();
    expect(hits).toBe(2);
    clock.advance(60_000); // 2m backoff has not passed
    await notifier().tick();
    expect(hits).toBe(2);
    clock.advance(60_000); // attempt 3 succeeds
    await notifier().tick();
    expect(hits).toBe(3);
    expect(ofKind('token.expiring').map((r) => r.body.token.id)).toContain(t.id);
    const list = await s.api('GET', '/api/v1/notifications');
    expect(list.body.items.find((n: any) => n.subject === t.id)).toMatchObject({ kind: 'token.expiring', state: 'delivered', attempts: 3 });
  });

  it('gives up after the configured attempts and counts it for the alert', async () => {
    failNext = 100;
    const t = await mint('doomed', 2 * DAY);
    await round();
    clock.advance(60_000);
    await notifier().tick();
    clock.advance(120_000);
    await notifier().tick();
    clock.advance(HOUR);
    await notifier().tick();
    failNext = 0;
    const list = await s.api('GET', '/api/v1/notifications');
    expect(list.body.items.find((n: any) => n.subject === t.id)).toMatchObject({ state: 'failed', attempts: 3, lastError: 'the webhook answered 503' });
    const failed = (await s.tw.ctx.metrics.notifications.get()).values.find((v) => v.labels.kind === 'token.expiring' && v.labels.outcome === 'failed');
    expect(failed?.value).toBe(1);
  });

  it('notices a failing rotation once per binding per window', async () => {
    const m = s.tw.ctx.metrics;
    m.rotations.inc({ binding: 'prometheus-scrape', outcome: 'failure' });
    await round();
    m.rotations.inc({ binding: 'prometheus-scrape', outcome: 'failure' });
    await round();
    expect(ofKind('rotation.failed').map((r) => r.body.binding.name)).toEqual(['prometheus-scrape']);
    clock.advance(DAY);
    m.rotations.inc({ binding: 'prometheus-scrape', outcome: 'failure' });
    await round();
    expect(ofKind('rotation.failed')).toHaveLength(2);
    expect(await notifier().rotationFailed('other', 'the Secret sink answered 403 Forbidden')).toBe(true);
    expect(await notifier().rotationFailed('other', 'again')).toBe(false);
    await notifier().tick();
    expect(ofKind('rotation.failed').at(-1)!.body.summary).toBe('Rotation of binding other failed: the Secret sink answered 403 Forbidden');
  });

  it('tells when a token goes unused for N days, once per stretch of disuse', async () => {
    const used = await mint('used', 200 * DAY);
    const plaintext = secrets.at(-1)!;
    expect((await s.api('GET', '/api/v1/whoami', undefined, plaintext)).status).toBe(200);
    await s.tw.ctx.verifier.lastUse.flush();
    await round(29 * DAY);
    expect(ofKind('token.unused').map((r) => r.body.token.id)).not.toContain(used.id);
    await round(2 * DAY);
    expect(ofKind('token.unused').filter((r) => r.body.token.id === used.id)).toHaveLength(1);
    expect(ofKind('token.unused').find((r) => r.body.token.id === used.id)!.body.summary).toMatch(/has not been used for 3\dd/);
    await round();
    expect(ofKind('token.unused').filter((r) => r.body.token.id === used.id)).toHaveLength(1);
  });

  it('never puts a secret in a notice', () => {
    expect(received.length).toBeGreaterThan(3);
    for (const r of received) {
      expect(r.raw).not.toMatch(TOKEN_PATTERN);
      for (const t of secrets) expect(r.raw).not.toContain(t.slice(17, 60));
      expect(r.raw).not.toContain(HMAC_KEY);
    }
  });

  it('sends a test notice on demand (admin:token)', async () => {
    const res = await s.api('POST', '/api/v1/notifications/test');
    expect(res.body).toEqual({ delivered: true });
    expect(verifySignature(ofKind('test').at(-1)!)).toBe(true);
  });
});
