import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_PRINCIPAL } from '../src/authority/authority.js';
import { ManualClock } from '../src/clock.js';
import { runCli } from './support/cli.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

const DAY = 86_400_000;
const MANY = 1_050;
const clock = new ManualClock(Date.UTC(2026, 0, 1));
let s: TestServer;
let oldest: string;

beforeAll(async () => {
  s = await startTestServer({ clock });
  await mintFor(s, 'bot-many', ['metrics.read'], { expiresIn: '90d' });
  const { authority } = s.tw.ctx;
  for (let i = 0; i < MANY; i++) {
    clock.advance(1);
    const t = await authority.createToken(SYSTEM_PRINCIPAL, { actor: 'bot-many', name: `t${i}`, scopes: ['metrics.read'], lifetimeMs: 90 * DAY });
    if (i === 0) oldest = t.token.id;
  }
  clock.advance(31 * DAY);
  expect((await s.api('GET', '/api/v1/whoami')).status).toBe(200);
  await s.tw.ctx.verifier.lastUse.flush();
}, 120_000);
afterAll(async () => s?.close());

describe('unused tokens: one definition, paged, no cap', () => {
  it('pages through more than 1,000 unused tokens, oldest first, with a cursor', async () => {
    const first = await s.api('GET', '/api/v1/tokens/unused?days=30&limit=1000');
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(1000);
    expect(first.body.items[1].id).toBe(oldest);
    expect(first.body.next).toEqual(expect.any(String));
    const second = await s.api('GET', `/api/v1/tokens/unused?days=30&limit=1000&cursor=${encodeURIComponent(first.body.next)}`);
    expect(second.status).toBe(200);
    // bot-many's first token (minted by mintFor) and the 1,050 after it; the admin's was just used.
    expect(first.body.items.length + second.body.items.length).toBe(MANY + 1);
    expect(second.body.next).toBeNull();
    const ids = new Set([...first.body.items, ...second.body.items].map((t: { id: string }) => t.id));
    expect(ids.size).toBe(MANY + 1);
  });

  it('refuses a cursor it did not hand out, naming the field', async () => {
    const r = await s.api('GET', '/api/v1/tokens/unused?days=30&cursor=bm90LWEtY3Vyc29y');
    expect(r.status).toBe(400);
    expect(r.body.field).toBe('cursor');
  });

  it('the CLI lists every one of them', async () => {
    const r = await runCli(['-o', 'json', 'token', 'unused', '--days', '30'], { TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: s.adminToken });
    expect(r.code, r.stderr).toBe(0);
    const listed = JSON.parse(r.stdout) as { actor: string }[];
    expect(listed.filter((t) => t.actor === 'bot-many')).toHaveLength(MANY + 1);
  });
});
