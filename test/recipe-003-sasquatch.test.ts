import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from './support/cli.js';
import { LOG_DIR, rememberSecret } from './support/output.js';
import { freePort } from './support/ports.js';
import { waitFor } from './support/wait.js';
import { recipeCommands, recipeYaml } from './support/recipes.js';
import { type TestServer, mintFor, startTestServer } from './support/server.js';

/**
 * docs/recipes/003-sasquatch.md, executed: the page's commands through the CLI, its JSON request
 * through the API with an `admin:token`-only user token, and its `tokenwarden gate` command in
 * front of a small node:http writer that must only see requests carrying write:sasquatch.
 */
const PAGE = 'docs/recipes/003-sasquatch.md';
let s: TestServer;
let admin: Record<string, string>;
let writer: Server;
let gate: ChildProcess;
let gateUrl: string;
const written: { body: string; headers: IncomingHttpHeaders }[] = [];
let aliceToken: string;
let apiToken: string;
let cliToken: string;

async function cli(args: string[], env: Record<string, string>) {
  const r = await runCli(args, env);
  expect(r.code, `tokenwarden ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
}

beforeAll(async () => {
  s = await startTestServer();
  admin = { TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: s.adminToken };
  writer = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      written.push({ body, headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => writer.listen(0, '127.0.0.1', () => r()));
});

afterAll(async () => {
  if (gate && gate.exitCode === null) {
    await new Promise<void>((resolve) => {
      gate.once('exit', () => resolve());
      gate.kill('SIGTERM');
      setTimeout(() => gate.kill('SIGKILL'), 5000).unref();
    });
  }
  await new Promise((r) => writer?.close(r));
  await s?.close();
});

describe('recipe 003 (Sasquatch): an admin mints a bot- service token with write:sasquatch', () => {
  it('sets up the scope and the bot identity; a service identity without bot- is refused', async () => {
    for (const args of recipeCommands(PAGE, 'setup')) await cli(args, admin);
    const bot = JSON.parse((await cli(['-o', 'json', 'actor', 'show', 'bot-jenkins-sasquatch'], admin)).stdout);
    expect(bot).toMatchObject({ kind: 'service', scopes: ['write:sasquatch'] });
    const noPrefix = await runCli(['actor', 'create', 'jenkins-sasquatch', '--kind', 'service', '--scope', 'write:sasquatch'], admin);
    expect(noPrefix.code).toBe(2);
    expect(noPrefix.stderr).toContain('bot-');
  });

  it("step 1: the admin's own user token holds only admin:token", async () => {
    const [createAlice, mintAdmin] = recipeCommands(PAGE, 'admin-token');
    await cli(createAlice!, admin);
    aliceToken = rememberSecret((await cli(mintAdmin!, admin)).stdout.trim());
    const who = await s.api('GET', '/api/v1/whoami', undefined, aliceToken);
    expect(who.body).toMatchObject({ actor: 'alice', scopes: ['admin:token'] });
  });

  it('mints through the API with the runbook-shaped JSON, and through the CLI', async () => {
    const request = recipeYaml(PAGE, 'api-request');
    const res = await s.api('POST', '/api/v1/tokens', request, aliceToken);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ actor: 'bot-jenkins-sasquatch', name: 'Jenkins metrics upload', scopes: ['write:sasquatch'], createdBy: 'alice' });
    expect(res.body.token).toMatch(/^twd_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$/);
    apiToken = res.body.token;
    expect(Date.parse(res.body.expiresAt) - Date.now()).toBeGreaterThan(89 * 86_400_000);

    // Gafaelfawr's field names are not silently ignored: the problem names the field to rename.
    const gafaelfawr = await s.api('POST', '/api/v1/tokens', { username: 'bot-jenkins-sasquatch', name: 'x', token_type: 'service', scopes: ['write:sasquatch'] }, aliceToken);
    expect(gafaelfawr.status).toBe(400);

    const [mint] = recipeCommands(PAGE, 'mint-cli');
    const minted = await cli(mint!, { TOKENWARDEN_SERVER: s.url, TOKENWARDEN_TOKEN: aliceToken });
    cliToken = rememberSecret(minted.stdout.trim());
    expect(cliToken).toMatch(/^twd_/);
    expect(minted.stderr).toContain('for bot-jenkins-sasquatch (write:sasquatch)');

    // Without admin:token, nobody hands out a scope they do not hold.
    const scraper = await mintFor(s, 'bot-scraper', ['metrics.read']);
    const refused = await s.api('POST', '/api/v1/tokens', request, scraper.token);
    expect(refused.status).toBe(403);
  });

  it('the gated writer accepts both tokens (sent as "bearer") and refuses a token without write:sasquatch with 403', async () => {
    const port = await freePort();
    const [args] = recipeCommands(PAGE, 'gate', {
      'http://127.0.0.1:8086': `http://127.0.0.1:${(writer.address() as { port: number }).port}`,
      '0.0.0.0:8087': `127.0.0.1:${port}`,
      'http://tokenwarden.tokenwarden.svc:8080': s.url,
    });
    const log = join(LOG_DIR, `gate-recipe-003-${process.pid}.log`);
    const out = createWriteStream(log);
    gate = spawn(process.execPath, [BIN, ...args!], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    gate.stdout!.pipe(out);
    gate.stderr!.pipe(out);
    gateUrl = await waitFor(async () => {
      if (gate.exitCode !== null) throw new Error(`gate exited: ${readFileSync(log, 'utf8')}`);
      return existsSync(log) && /listening on (http\S+),/.exec(readFileSync(log, 'utf8'))?.[1];
    }, 'the gate to listen', 15_000);

    const post = (token: string | null) =>
      fetch(`${gateUrl}/api/v1/write?db=lsst.example`, {
        method: 'POST',
        headers: { ...(token ? { authorization: `bearer ${token}` } : {}), 'content-type': 'text/plain' },
        body: 'jenkins_build,job=nightly duration=42',
      });

    for (const token of [apiToken, cliToken]) {
      const res = await post(token);
      expect(res.status).toBe(204);
    }
    expect(written).toHaveLength(2);
    for (const w of written) {
      expect(w.body).toBe('jenkins_build,job=nightly duration=42');
      expect(w.headers['x-tokenwarden-actor']).toBe('bot-jenkins-sasquatch');
      expect(w.headers.authorization).toBeUndefined(); // the token never reaches the writer
    }

    const other = await mintFor(s, 'bot-reader', ['metrics.read']);
    const forbidden = await post(other.token);
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get('www-authenticate')).toBe('Bearer realm="tokenwarden", error="insufficient_scope", error_description="the token lacks write:sasquatch", scope="write:sasquatch"');
    expect((await post(null)).status).toBe(401);
    expect(written).toHaveLength(2);
  });
});
