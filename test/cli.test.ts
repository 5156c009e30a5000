import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { rememberSecret, tempDir } from './support/output.js';
import { freePort } from './support/ports.js';
import { waitFor } from './support/wait.js';
import { type ServeProcess, spawnServe } from './support/process.js';

let serve: ServeProcess;
let env: Record<string, string>;
let dir: string;

beforeAll(async () => {
  dir = tempDir('cli');
  // Port 0: the OS picks a free one and serve prints it (no bind-close-reuse race).
  serve = await spawnServe(['--port', '0', '--store', join(dir, 'tw.db'), '--bootstrap-token-file', join(dir, 'admin.token')]);
  const admin = rememberSecret(readFileSync(join(dir, 'admin.token'), 'utf8').trim());
  env = { TOKENWARDEN_SERVER: serve.url, TOKENWARDEN_TOKEN: admin };
});
afterAll(async () => {
  await serve?.stop();
});

describe('CLI against a running server', () => {
  it('writes the first admin token once, mode 0600', async () => {
    expect(statSync(join(dir, 'admin.token')).mode & 0o777).toBe(0o600);
    // The banner's lines reach the log file in more than one chunk; the notice comes after "listening".
    const out = await waitFor(async () => {
      const text = readFileSync(serve.stdoutFile, 'utf8');
      return text.includes('first admin token written to') && text;
    }, 'the notice that the first admin token was written to the file', 5000, 20);
    expect(out).not.toMatch(/twd_[0-9A-Za-z]{12}_/); // the token itself went to the file only
  });

  it('walks the README: bot-prometheus, a metrics.read token, list, revoke', async () => {
    const actor = await runCli(['actor', 'create', 'bot-prometheus', '--role', 'metrics-read'], env);
    expect(actor.code, actor.stderr).toBe(0);
    expect(actor.stdout).toMatch(/bot-prometheus\s+service\s+metrics-read/);

    const created = await runCli(['token', 'create', '--actor', 'bot-prometheus', '--name', 'scrape', '--scope', 'metrics.read', '--expires-in', '30d'], env);
    expect(created.code, created.stderr).toBe(0);
    const token = rememberSecret(created.stdout.trim());
    expect(token).toMatch(/^twd_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$/);
    expect(created.stderr).toContain('only time the token is shown');
    const id = token.slice(4, 16);

    const list = await runCli(['token', 'list', '--actor', 'bot-prometheus'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${id}\\s+scrape\\s+bot-prometheus\\s+metrics.read\\s+active\\s+in 30d\\s+never`));
    expect(list.stdout).not.toContain(token);

    const json = await runCli(['-o', 'json', 'token', 'show', id], env);
    expect(JSON.parse(json.stdout)).toMatchObject({ id, state: 'active', scopes: ['metrics.read'] });

    // the token works at the forward-auth endpoint until revoked
    const auth = () => fetch(`${serve.url}/auth?scope=metrics.read`, { headers: { authorization: `Bearer ${token}` } });
    expect((await auth()).status).toBe(200);
    const revoke = await runCli(['token', 'revoke', id, '--reason', 'rotated by hand'], env);
    expect(revoke.code).toBe(0);
    expect(revoke.stdout).toContain('revoked');
    expect((await auth()).status).toBe(401);

    const audit = await runCli(['-o', 'json', 'audit', '--action', 'token.revoke'], env);
    expect(JSON.parse(audit.stdout)[0]).toMatchObject({ action: 'token.revoke', targetId: id, actor: 'admin', detail: { reason: 'rotated by hand' } });
  });

  it('distinguishes usage, auth, input and connection errors by exit code', async () => {
    expect((await runCli(['token', 'frobnicate'], env)).code).toBe(2);
    const badInput = await runCli(['actor', 'create', 'prometheus', '--kind', 'service'], env);
    expect(badInput.code).toBe(2);
    expect(badInput.stderr).toContain('must start with "bot-"');
    const noAuth = await runCli(['token', 'list'], { ...env, TOKENWARDEN_TOKEN: 'twd_wrong' });
    expect(noAuth.code).toBe(3);
    expect(noAuth.stderr).toContain('401');
    const missing = await runCli(['token', 'list'], { TOKENWARDEN_SERVER: serve.url });
    expect(missing.code).toBe(3);
    const down = await runCli(['token', 'list'], { ...env, TOKENWARDEN_SERVER: 'http://127.0.0.1:1' });
    expect(down.code).toBe(5);
    expect(down.stderr).toContain('cannot reach tokenwarden');
  });

  it('saves a login to the CLI config file (0600) and uses it', async () => {
    const cfg = join(dir, 'cli.yaml');
    const login = await runCli(['login', '--token-stdin', '--server', serve.url], { TOKENWARDEN_CLI_CONFIG: cfg }, env.TOKENWARDEN_TOKEN);
    expect(login.code, login.stderr).toBe(0);
    expect(statSync(cfg).mode & 0o777).toBe(0o600);
    const who = await runCli(['whoami'], { TOKENWARDEN_CLI_CONFIG: cfg });
    expect(who.code).toBe(0);
    expect(who.stdout).toContain('admin');
  });

  it('roles and scopes of ones own', async () => {
    expect((await runCli(['scope', 'create', 'write:sasquatch'], env)).code).toBe(0);
    const role = await runCli(['role', 'create', 'sasquatch-writer', '--scope', 'write:sasquatch'], env);
    expect(role.code, role.stderr).toBe(0);
    expect((await runCli(['actor', 'create', 'bot-writer', '--role', 'sasquatch-writer'], env)).code).toBe(0);
    const t = await runCli(['token', 'create', '-a', 'bot-writer', '-n', 'w', '-s', 'write:sasquatch'], env);
    expect(t.code).toBe(0);
    rememberSecret(t.stdout.trim());
  });

  it('shuts down gracefully on SIGTERM', async () => {
    const port = await freePort();
    const other = await spawnServe(['--port', String(port), '--store', join(dir, 'other.db'), '--bootstrap-token-file', join(dir, 'other.token')]);
    rememberSecret(readFileSync(join(dir, 'other.token'), 'utf8').trim());
    expect(await other.stop('SIGTERM')).toBe(0);
  });
});
