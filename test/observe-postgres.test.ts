import { type Server, createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_PRINCIPAL } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import { type PostgresServer, startPostgres } from './support/postgres.js';
import { rememberSecret } from './support/output.js';
import { type TestServer, startTestServer } from './support/server.js';

/** The observability queries (gauges, outbox, doctor) on the PostgreSQL engine, against a real server. */
const DAY = 86_400_000;
const clock = new ManualClock(Date.UTC(2026, 0, 1));
let pg: PostgresServer;
let s: TestServer;
let receiver: Server;
const bodies: any[] = [];

beforeAll(async () => {
  pg = await startPostgres({ name: 'observe' });
  receiver = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      bodies.push(JSON.parse(raw));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  s = await startTestServer({
    clock,
    storeUrl: await pg.createDatabase('observe'),
    config: { notifications: { webhookUrl: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/`, checkInterval: '1h', unusedFor: '0' } },
  });
});
afterAll(async () => {
  await s?.close();
  await new Promise((r) => receiver?.close(r));
  await pg?.destroy();
});

describe('observability on PostgreSQL', () => {
  it('gauges, de-duplicated notices and doctor work on the PostgreSQL engine', async () => {
    const a = s.tw.ctx.authority;
    await a.createActor(SYSTEM_PRINCIPAL, { name: 'bot-pg', kind: 'service', roles: ['metrics-read'] });
    const soon = await a.createToken(SYSTEM_PRINCIPAL, { actor: 'bot-pg', name: 'soon', scopes: ['metrics.read'], lifetimeMs: 2 * DAY });
    const revoked = await a.createToken(SYSTEM_PRINCIPAL, { actor: 'bot-pg', name: 'gone', scopes: ['metrics.read'], lifetimeMs: 9 * DAY });
    rememberSecret(soon.plaintext);
    rememberSecret(revoked.plaintext);
    await a.revokeToken(SYSTEM_PRINCIPAL, revoked.token.id, 'rotated by hand');

    const metrics = await s.api('GET', '/metrics', undefined, soon.plaintext);
    expect(metrics.body).toContain('tokenwarden_tokens{state="active"} 2');
    expect(metrics.body).toContain('tokenwarden_tokens{state="revoked"} 1');
    expect(metrics.body).toContain(`tokenwarden_token_expires_in_seconds{token_id="${soon.token.id}",token_name="soon",actor="bot-pg",managed="false"} ${2 * 86400}`);

    clock.advance(2 * 3_600_000);
    await s.tw.ctx.notifier!.tick();
    clock.advance(2 * 3_600_000);
    await s.tw.ctx.notifier!.tick();
    expect(bodies.filter((b) => b.kind === 'token.expiring').map((b) => b.token.id)).toEqual([soon.token.id]);

    const d = await s.api('POST', '/api/v1/doctor', { token: revoked.plaintext });
    expect(d.body).toMatchObject({ status: 401, reason: 'revoked', token: { revokedBy: 'system', revokeReason: 'rotated by hand' } });
  });
});
