import { createWriteStream, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { TokenAgent } from '../src/agent/agent.js';
import { checkAgentConfig } from '../src/agent/agent-config.js';
import { ManualClock } from '../src/clock.js';
import { ConfigError } from '../src/config/server-config.js';
import { createLogger } from '../src/log.js';
import { runCli } from './support/cli.js';
import { LOG_DIR, rememberSecret, tempDir } from './support/output.js';
import { freePort } from './support/ports.js';
import { waitFor } from './support/wait.js';
import { type TestServer, startTestServer } from './support/server.js';
import { FakeUpstream } from './support/upstream.js';
import { startKubernetesEmulator } from './support/k8s-emulator.js';
import { SignJWT } from 'jose';

let up: FakeUpstream;
let dir: string;
const logFile = join(LOG_DIR, `agent-${process.pid}.log`);
const stream = createWriteStream(logFile);
const logger = createLogger({ level: 'debug', stream });
const env = () => ({ CPD_USERNAME: up.username });

beforeAll(async () => {
  up = await FakeUpstream.start({ lifetimeSeconds: 600 });
  dir = tempDir('agent');
  writeFileSync(join(dir, 'password'), `${up.password}\n`, { mode: 0o600 });
});
afterAll(async () => {
  await up?.close();
  await new Promise((r) => stream.end(r));
});

function cpdBinding(name: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    source: {
      kind: 'http-login',
      url: `${up.url}/icp4d-api/v1/authorize`,
      body: { username: { env: 'CPD_USERNAME' }, password: { file: join(dir, 'password') } },
      tokenPath: '.token',
      timeout: '2s',
      ...extra,
    },
    sinks: [{ kind: 'file', path: join(dir, `${name}.token`) }],
  };
}

function writeConfig(file: string, config: unknown): string {
  const path = join(dir, file);
  writeFileSync(path, stringify(config));
  return path;
}

describe('tokenwarden agent --once (a cron job)', () => {
  it('logs in, writes the file (0600) and a state file (0600, no secret), and skips what is not due', async () => {
    const config = writeConfig('cron.yaml', { state: { file: join(dir, 'cron-state.json') }, bindings: [cpdBinding('cpd')] });
    const before = up.issued;
    const first = await runCli(['agent', '--config', config, '--once'], env());
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^cpd\tok\texpires \d{4}-/);
    const token = readFileSync(join(dir, 'cpd.token'), 'utf8').trim();
    expect(await up.accepts(token)).toBe(true);
    expect(statSync(join(dir, 'cpd.token')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'cron-state.json')).mode & 0o777).toBe(0o600);
    const state = readFileSync(join(dir, 'cron-state.json'), 'utf8');
    expect(state).not.toContain(token);
    expect(JSON.parse(state).bindings.cpd.refresh).toMatchObject({ healthy: true, failures: 0 });
    expect(first.stderr).not.toContain(up.password);
    expect(first.stderr).not.toContain(token);

    // Not due: nothing happens. The file removed behind the agent's back: filled again.
    expect((await runCli(['agent', '--config', config, '--once'], env())).code).toBe(0);
    expect(up.issued).toBe(before + 1);
    rmSync(join(dir, 'cpd.token'));
    expect((await runCli(['agent', '--config', config, '--once'], env())).code).toBe(0);
    expect(up.issued).toBe(before + 2);
    const refilled = readFileSync(join(dir, 'cpd.token'), 'utf8').trim();
    expect(await up.accepts(refilled)).toBe(true);
    // Overwritten with something else (an old copy restored): refilled too; the state keeps only a fingerprint.
    writeFileSync(join(dir, 'cpd.token'), `${token}\n`);
    const drift = await runCli(['agent', '--config', config, '--once'], env());
    expect(drift.code, drift.stderr).toBe(0);
    expect(up.issued).toBe(before + 3);
    expect(readFileSync(join(dir, 'cpd.token'), 'utf8').trim()).not.toBe(token);
    expect(drift.stderr).toContain('a sink holds another token; refilling it now');
    expect(JSON.parse(readFileSync(join(dir, 'cron-state.json'), 'utf8')).bindings.cpd.refresh.fingerprint).toMatch(/^up_[\w-]{12}$/);
    expect(readFileSync(join(dir, 'cron-state.json'), 'utf8')).not.toContain(refilled);

    const status = await runCli(['agent', '--config', config, '--status'], env());
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('cpd\tok');
  });

  it('exits 1 and says why when the upstream refuses the credentials; nothing written, no secret shown', async () => {
    writeFileSync(join(dir, 'wrong'), 'not-the-password\n');
    const config = writeConfig('bad.yaml', {
      state: { file: join(dir, 'bad-state.json') },
      bindings: [{ ...cpdBinding('bad'), source: { ...cpdBinding('bad').source, body: { username: { env: 'CPD_USERNAME' }, password: { file: join(dir, 'wrong') } } } }],
    });
    const res = await runCli(['agent', '--config', config, '--once'], env());
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/bad\tFAILING\texpires never delivered\tPOST http:\/\/127\.0\.0\.1:\d+\/icp4d-api\/v1\/authorize answered 401: the upstream refused the credentials; check the credentials in env CPD_USERNAME, file .*wrong/);
    expect(res.stderr).toContain('1 binding(s) need attention');
    expect(res.stdout + res.stderr).not.toContain('not-the-password');
    expect(() => readFileSync(join(dir, 'bad.token'))).toThrow();
  });

  it("follows a user's token from a Kubernetes Secret into a file (seed 002 as a cron job), expiry from the JWT", async () => {
    const k8s = await startKubernetesEmulator({ namespaces: ['user-alice'] });
    try {
      const exp = Math.floor(Date.now() / 1000) + 20 * 60;
      const token = rememberSecret(await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(exp).sign(new TextEncoder().encode(`k-${Math.random()}`)));
      k8s.seed('secrets', { metadata: { name: 'access-token', namespace: 'user-alice' }, stringData: { AUTH_TOKEN: token } });
      const file = join(dir, 'alice.token');
      const config = writeConfig('k8s.yaml', {
        state: { file: join(dir, 'k8s-state.json') },
        bindings: [{ name: 'alice', source: { kind: 'kubernetes-secret', namespace: 'user-alice', name: 'access-token', key: 'AUTH_TOKEN' }, sinks: [{ kind: 'file', path: file }] }],
      });
      const res = await runCli(['agent', '--config', config, '--once'], { KUBECONFIG: k8s.writeKubeconfig({ dir }) });
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toContain(`alice\tok\texpires ${new Date(exp * 1000).toISOString()}`);
      expect(readFileSync(file, 'utf8').trim()).toBe(token);
      expect(res.stdout + res.stderr).not.toContain(token);

      // The user offboarded: the Secret is gone. Said plainly; the last good token stays in the file.
      k8s.remove('secrets', 'user-alice', 'access-token');
      rmSync(join(dir, 'k8s-state.json')); // so the cron run refreshes now rather than at 70% of the token's life
      const gone = await runCli(['agent', '--config', config, '--once'], { KUBECONFIG: k8s.writeKubeconfig({ dir }) });
      expect(gone.code).toBe(1);
      expect(gone.stdout).toContain('Secret user-alice/access-token not found: the user may have been offboarded, or the Secret was renamed');
      expect(readFileSync(file, 'utf8').trim()).toBe(token);
    } finally {
      await k8s.stop();
    }
  });

  it('refuses literal secrets and unknown fields in agent.yaml with exit 2, naming the field', async () => {
    const b = cpdBinding('lit');
    const config = writeConfig('literal.yaml', { bindings: [{ ...b, source: { ...b.source, body: { username: 'svc', password: 'hunter2-in-git' } } }] });
    const res = await runCli(['agent', '--config', config, '--once'], env());
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('bindings[0].source.body.password: a literal secret in the configuration is refused');
    expect(res.stderr).not.toContain('hunter2');
    expect(() => checkAgentConfig({ bindings: [{ ...b, mint: { actor: 'bot-x', scopes: ['a'], lifetime: '1h' } }] })).toThrow(ConfigError);
    const err = (() => {
      try {
        checkAgentConfig({ bindings: [{ ...b, sinks: [{ kind: 'file' }], extra: 1 }], server: { url: 'http://x', token: 'twd_literal' } });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems.join('\n')).toContain('server.token: a literal secret');
    expect(err!.problems.join('\n')).not.toContain('twd_literal');
    const missing = await runCli(['agent', '--once'], env());
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--config');
  });
});

describe('agent with oauth2-refresh-token: the rotated refresh token survives a restart, sealed', () => {
  it('continues the chain after a restart; the state file holds it sealed only', async () => {
    const clock = new ManualClock(Date.now());
    const rt = up.newRefreshToken();
    const key = rememberSecret(Buffer.alloc(32, 9).toString('base64'));
    const config = checkAgentConfig({
      state: { file: join(dir, 'rt-state.json'), key: { env: 'STATE_KEY' } },
      bindings: [
        {
          name: 'oauth',
          source: { kind: 'oauth2-refresh-token', tokenUrl: `${up.url}/oauth/token`, clientId: up.clientId, clientSecret: { env: 'CS' }, refreshToken: { env: 'RT' } },
          refresh: { at: 0.5, jitter: 0 },
          sinks: [{ kind: 'file', path: join(dir, 'oauth.token') }],
        },
      ],
    });
    const agentEnv = { STATE_KEY: key, CS: up.clientSecret, RT: rt };
    const run = async () => {
      const agent = await TokenAgent.create(config, { clock, logger, env: agentEnv });
      try {
        return await agent.runOnce();
      } finally {
        await agent.close();
      }
    };
    expect((await run())[0]).toMatchObject({ healthy: true, valid: true });
    const firstToken = readFileSync(join(dir, 'oauth.token'), 'utf8').trim();
    clock.advance(301_000);
    expect((await run())[0]).toMatchObject({ healthy: true, valid: true }); // a new process, the rotated refresh token
    const second = readFileSync(join(dir, 'oauth.token'), 'utf8').trim();
    expect(second).not.toBe(firstToken);
    expect(await up.accepts(second)).toBe(true);
    const state = readFileSync(join(dir, 'rt-state.json'), 'utf8');
    expect(state).toContain('"binding:oauth": "v1.');
    expect(state).not.toMatch(/rt-[0-9a-f]{32}/);

    // Without a key, the configuration is refused up front.
    await expect(TokenAgent.create({ ...config, state: { file: join(dir, 'nokey.json') } }, { clock, logger, env: agentEnv })).rejects.toThrow('state key');
  });
});

describe('agent minting against a remote tokenwarden (REST API)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    await server.api('POST', '/api/v1/actors', { name: 'bot-scraper', kind: 'service', roles: ['metrics-read'] });
    writeFileSync(join(dir, 'admin.token'), `${server.adminToken}\n`, { mode: 0o600 });
  });
  afterAll(async () => server?.close());

  const tokenState = async (id: string) => (await server.api('GET', `/api/v1/tokens/${id}`)).body.state;

  it('mints, delivers, replaces before expiry, revokes the old one after its grace, and revokes what it could not deliver', async () => {
    const clock = new ManualClock(Date.now());
    const config = checkAgentConfig({
      state: { file: join(dir, 'mint-state.json') },
      server: { url: server.url, token: { file: join(dir, 'admin.token') } },
      bindings: [
        { name: 'scrape', mint: { actor: 'bot-scraper', scopes: ['metrics.read'], lifetime: '1h', grace: '2m' }, sinks: [{ kind: 'file', path: join(dir, 'scrape.token') }] },
        { name: 'broken', mint: { actor: 'bot-scraper', scopes: ['metrics.read'], lifetime: '1h' }, sinks: [{ kind: 'file', path: join(dir, 'no-such-dir', 'x.token') }] },
      ],
    });
    const agent = await TokenAgent.create(config, { clock, logger });
    try {
      const report = await agent.runOnce();
      expect(report.find((r) => r.binding === 'scrape')).toMatchObject({ healthy: true, valid: true });
      expect(report.find((r) => r.binding === 'broken')).toMatchObject({ healthy: false, valid: false });
      expect(report.find((r) => r.binding === 'broken')!.lastError).toMatch(/writing to file:.*no-such-dir.* failed/);
      const first = rememberSecret(readFileSync(join(dir, 'scrape.token'), 'utf8').trim());
      const auth = (t: string) => fetch(`${server.url}/auth?scope=metrics.read`, { headers: { authorization: `Bearer ${t}` } }).then((r) => r.status);
      expect(await auth(first)).toBe(200);
      const firstId = agent.state.data.bindings.scrape!.minted!.tokenId!;
      // the token minted for "broken" never reached a sink: it was revoked at once
      const listed = (await server.api('GET', '/api/v1/tokens?actor=bot-scraper')).body as { id: string; name: string; state: string }[];
      const orphan = (Array.isArray(listed) ? listed : (listed as any).items).find((t: { name: string }) => t.name.startsWith('agent:broken:'));
      expect(orphan.state).toBe('revoked');

      clock.advance(45 * 60_000); // past 0.66 of the lifetime
      await agent.runOnce();
      const second = rememberSecret(readFileSync(join(dir, 'scrape.token'), 'utf8').trim());
      expect(second).not.toBe(first);
      expect(await auth(second)).toBe(200);
      expect(await tokenState(firstId)).toBe('active'); // within its grace
      clock.advance(3 * 60_000);
      await agent.runOnce();
      expect(await tokenState(firstId)).toBe('revoked');
      expect(agent.state.data.bindings.scrape!.minted!.retire).toEqual([]);
      expect(readFileSync(join(dir, 'mint-state.json'), 'utf8')).not.toContain(second);
    } finally {
      await agent.close();
    }
  });
});

describe('agent as a sidecar', () => {
  it('refreshes on its own and serves its metrics for the refresh-failure alert', async () => {
    const port = await freePort();
    const config = checkAgentConfig({ state: { file: join(dir, 'sidecar-state.json') }, metrics: { port }, bindings: [cpdBinding('sidecar')] });
    const agent = await TokenAgent.create(config, { logger, env: env() });
    try {
      agent.start();
      await waitFor(async () => agent.report()[0]!.healthy, 'the first refresh', 10_000);
      expect(await up.accepts(readFileSync(join(dir, 'sidecar.token'), 'utf8').trim())).toBe(true);
      const text = await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), 'metrics', 5_000);
      expect(text).toContain('tokenwarden_binding_healthy{binding="sidecar"} 1');
      expect(text).toMatch(/tokenwarden_binding_token_expiry_timestamp_seconds\{binding="sidecar"\} \d+/);
    } finally {
      await agent.close();
    }
  });
});

describe('agent logs', () => {
  it('hold no secret', async () => {
    // The log stream writes asynchronously: wait for what must be there, then look for what must not.
    const text = await waitFor(async () => {
      const t = readFileSync(logFile, 'utf8');
      return t.includes('refreshed token from upstream') && t;
    }, 'the refresh to be logged', 5000, 20);
    for (const s of [up.password, up.clientSecret]) expect(text).not.toContain(s);
    expect(text).not.toMatch(/eyJ[\w-]+\.[\w-]+\.|twd_[0-9A-Za-z]{12}_/);
  });
});
