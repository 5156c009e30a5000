import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import { runCli } from './support/cli.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

const DAY = 86_400_000;
const clock = new ManualClock(Date.UTC(2026, 0, 1));
let s: TestServer;
let env: Record<string, string>;
let stale: { id: string; token: string };
let busy: { id: string; token: string };

beforeAll(async () => {
  s = await startTestServer({ clock });
  env = { TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: s.adminToken };
  stale = await mintFor(s, 'bot-stale', ['metrics.read'], { expiresIn: '90d' });
  busy = await mintFor(s, 'bot-busy', ['metrics.read'], { expiresIn: '90d' });
  clock.advance(31 * DAY);
  // Both the admin's and bot-busy's tokens are used now; bot-stale's never was.
  expect((await s.api('GET', '/api/v1/whoami')).status).toBe(200);
  expect((await s.api('GET', '/api/v1/whoami', undefined, busy.token)).status).toBe(200);
  await s.tw.ctx.verifier.lastUse.flush();
});
afterAll(async () => s?.close());

const state = async (id: string) => (await s.api('GET', `/api/v1/tokens/${id}`)).body;

describe('tokenwarden token unused (seed 004: "last synced at")', () => {
  it('lists live tokens not used for N days, never-used ones counted from creation', async () => {
    const r = await runCli(['-o', 'json', 'token', 'unused', '--days', '30'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).map((t: any) => t.id)).toEqual([stale.id]);
    const none = await runCli(['-o', 'json', 'token', 'unused', '--days', '40'], env);
    expect(JSON.parse(none.stdout)).toEqual([]);
  });

  it('--revoke asks first; anything but yes revokes nothing', async () => {
    const no = await runCli(['token', 'unused', '--days', '30', '--revoke'], env, 'n\n');
    expect(no.code).toBe(2);
    expect(no.stderr).toContain('Revoke these 1 token(s)? [y/N]');
    expect(no.stderr).toContain('not confirmed: nothing was revoked');
    const closed = await runCli(['token', 'unused', '--days', '30', '--revoke'], env);
    expect(closed.code).toBe(2);
    expect((await state(stale.id)).state).toBe('active');
  });

  it('--revoke with "y" revokes exactly the listed tokens, with a reason in the audit log', async () => {
    const yes = await runCli(['token', 'unused', '--days', '30', '--revoke'], env, 'y\n');
    expect(yes.code, yes.stderr).toBe(0);
    expect(yes.stderr).toContain(`revoked ${stale.id} (bot-stale/`);
    expect(await state(stale.id)).toMatchObject({ state: 'revoked', revokeReason: 'unused for 30 days', revokedBy: 'admin' });
    expect((await state(busy.id)).state).toBe('active');
    const again = await runCli(['token', 'unused', '--days', '30', '--revoke', '--yes'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('(none)');
  });
});
