import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.js';
import type { DeliveryController } from '../src/delivery/controller.js';
import { loadKubeConfig } from '../src/kubernetes/client.js';
import { upstreamTokenId } from '../src/token/format.js';
import { runCli } from './support/cli.js';
import { type KubernetesEmulator, startKubernetesEmulator } from './support/k8s-emulator.js';
import { rememberSecret, tempDir } from './support/output.js';
import { recipeBlock, recipeCommands } from './support/recipes.js';
import { type TestServer, startTestServer } from './support/server.js';

/**
 * docs/recipes/002-ezmeral.md, executed: the page's binding, applied with its commands, follows a
 * short-lived token that the "platform" keeps rewriting in Secret user-alice/access-token#AUTH_TOKEN
 * (Kubernetes API emulator) into the client's file; the user is then offboarded (namespace
 * deleted) and the binding reports it while the file keeps the last good token. The server's
 * clock is moved by hand, so Ezmeral's real 10–30 minute lifetimes run in a second.
 */
const PAGE = 'docs/recipes/002-ezmeral.md';
const MIN = 60_000;
const clock = new ManualClock(Date.UTC(2026, 4, 4, 9, 0, 0));
const platformKey = new TextEncoder().encode(`ezmeral-platform-${process.pid}-${Math.random()}`);
let s: TestServer;
let ctl: DeliveryController;
let k8s: KubernetesEmulator;
let dir: string;
let tokenFile: string;
let env: Record<string, string>;
let commands: string[][];

/** The platform signs the user in and writes a fresh access token into the user's Secret. */
async function platformWrites(minutes: number): Promise<string> {
  const now = Math.floor(clock.now() / 1000);
  const token = await new SignJWT({ preferred_username: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt(now).setExpirationTime(now + minutes * 60).sign(platformKey);
  rememberSecret(token);
  k8s.seed('secrets', { metadata: { name: 'access-token', namespace: 'user-alice' }, stringData: { AUTH_TOKEN: token } });
  return token;
}

async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await ctl.tick();
    clock.advance(1000);
  }
}

const fileToken = () => readFileSync(tokenFile, 'utf8').trim();
const binding = async () => (await s.api('GET', '/api/v1/bindings/alice-ezua-token')).body;

beforeAll(async () => {
  dir = tempDir('recipe-002');
  tokenFile = join(dir, 'ezua-token');
  k8s = await startKubernetesEmulator({ namespaces: ['default', 'user-alice'] });
  s = await startTestServer({
    clock,
    config: { delivery: { fileRoots: [dir] } },
    delivery: { kubernetes: loadKubeConfig({ mode: 'kubeconfig', path: k8s.writeKubeconfig({ dir }) }), autoStart: false, pollMs: 1000, retryBaseMs: 1000, retryMaxMs: 60_000 },
  });
  ctl = s.tw.ctx.delivery!;
  env = { TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: s.adminToken };
  writeFileSync(join(dir, 'alice-ezua-token.yaml'), recipeBlock(PAGE, 'binding', { '/var/lib/reporting/ezua-token': tokenFile }));
  commands = recipeCommands(PAGE, 'apply', { 'alice-ezua-token.yaml': join(dir, 'alice-ezua-token.yaml') });
});

afterAll(async () => {
  await s?.close();
  await k8s?.stop();
});

describe("recipe 002 (Ezmeral): a user's short-lived token followed from its Secret into the client's file", () => {
  let second: string;

  it('delivers the token and follows the platform rewriting it', async () => {
    const first = await platformWrites(20);
    const [apply, show] = commands;
    const applied = await runCli(apply!, env);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('alice-ezua-token');
    await settle();
    expect(fileToken()).toBe(first);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(await binding()).toMatchObject({ healthy: true, tokenId: upstreamTokenId(first), source: { kind: 'kubernetes-secret' } });

    // The platform rewrites the Secret 8 minutes later; tokenwarden picks it up at half of the first token's life.
    clock.advance(8 * MIN);
    second = await platformWrites(20);
    await settle();
    expect(fileToken()).toBe(first); // not due yet: no needless reads
    clock.advance(3 * MIN);
    await settle();
    expect(fileToken()).toBe(second);
    const shown = await runCli(show!, env);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/alice-ezua-token\s+alice\s+upstream\s+active\s+up_/);
    expect(shown.stdout).toContain(upstreamTokenId(second));
  });

  it('an offboarded user (namespace and Secret gone) is reported clearly; the last good token stays in the file', async () => {
    k8s.deleteNamespace('user-alice');
    clock.advance(9 * MIN); // past the next refresh, before the second token's expiry
    await settle();
    // The refresh reads the Secret over the network: on a busy machine it may need a few more ticks (at most 30 s of clock).
    for (let i = 0; i < 30 && (await binding()).healthy; i++) await settle(1);
    const b = await binding();
    expect(b.healthy).toBe(false);
    expect(b.lastError).toContain('Secret user-alice/access-token not found: the user may have been offboarded');
    expect(fileToken()).toBe(second);
    expect(Date.parse(b.expiresAt)).toBeGreaterThan(clock.now()); // still valid: nothing was removed

    const shown = await runCli(commands[1]!, env);
    expect(shown.stdout).toMatch(/alice-ezua-token\s+alice\s+upstream\s+gone/);
    expect(shown.stdout).toContain('the user may have been offboarded');
    const metrics = await s.tw.ctx.metrics.registry.metrics();
    expect(metrics).toContain('tokenwarden_binding_healthy{binding="alice-ezua-token"} 0');
    expect(metrics).toMatch(/tokenwarden_source_refresh_failures_total\{binding="alice-ezua-token",source="kubernetes-secret"\} [1-9]/);
  });
});
