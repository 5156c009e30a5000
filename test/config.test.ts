import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadConfig } from '../src/config/server-config.js';
import { runCli } from './support/cli.js';
import { tempDir } from './support/output.js';

let dir: string;
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

beforeAll(() => {
  dir = tempDir('config');
});

describe('configuration errors say where, what and what to do', () => {
  it('names the path, shows the value found and the expected form', () => {
    const path = file('bad.yaml', 'listen:\n  port: 99999\ntokens:\n  maxLifetime: ninety days\nlog:\n  level: loud\n');
    const problems = problemsOf(() => loadConfig({ file: path, env: {} }));
    expect(problems).toContain('listen.port: expected integer to be less or equal to 65535, got 99999; expected a number ≥ 0 and ≤ 65535');
    expect(problems.find((p) => p.startsWith('tokens.maxLifetime:'))).toBe('tokens.maxLifetime: "ninety days" is not valid; expected a duration such as "90d", "12h", "30s", or a number of seconds');
    expect(problems.find((p) => p.startsWith('log.level:'))).toMatch(/^log\.level: "loud" is not valid; use one of "fatal", "error", "warn", "info"/);
  });

  it('says which environment variable a bad value came from (env wins over the file)', () => {
    const path = file('ok.yaml', 'log:\n  level: info\n');
    const problems = problemsOf(() => loadConfig({ file: path, env: { TOKENWARDEN_LOG_LEVEL: 'chatty', TOKENWARDEN_LISTEN_PORT: 'eighty' } }));
    expect(problems).toContain('TOKENWARDEN_LISTEN_PORT must be a whole number, got "eighty"');
    expect(problems.find((p) => p.startsWith('log.level'))).toMatch(/^log\.level \(from TOKENWARDEN_LOG_LEVEL\): "chatty" is not valid; use one of/);
  });

  it('reports unknown and missing TLS settings without echoing values of secret-looking fields', () => {
    const path = file('tls.yaml', 'tls:\n  cert: /etc/tls/tls.crt\n  keyfile: /etc/tls/tls.key\n');
    const problems = problemsOf(() => loadConfig({ file: path, env: {} }));
    expect(problems).toContain('tls.key: expected required property; add it');
    expect(problems.find((p) => p.startsWith('tls.keyfile'))).toMatch(/is not a known setting; remove it or fix its spelling \(known here: cert, key, reloadInterval\)/);
  });

  it('reads TLS files from the environment', () => {
    const config = loadConfig({ env: { TOKENWARDEN_TLS_CERT: '/c.crt', TOKENWARDEN_TLS_KEY: '/c.key' } });
    expect(config.tls).toEqual({ cert: '/c.crt', key: '/c.key' });
    expect(loadConfig({ env: {} }).tls).toBeUndefined();
  });
});

describe('tokenwarden config check', () => {
  it('prints the effective configuration with credentials redacted; env wins over the file', async () => {
    const path = file(
      'good.yaml',
      [
        'listen: { host: 0.0.0.0, port: 8080 }',
        'store: { url: "postgres://tokenwarden:s3cr3t-pw@db.example:5432/tokenwarden" }',
        'tokens: { maxLifetime: 90d }',
        'notifications: { webhookUrl: "https://hooks.example/services/T000/B000/webhook-credential" }',
        'upstream:',
        '  password: hunter2-upstream',
        '  clientSecret: shh-client',
        '',
      ].join('\n'),
    );
    const res = await runCli(['config', 'check', '-c', path], { TOKENWARDEN_LISTEN_PORT: '9443' });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('configuration is valid');
    const shown = parseYaml(res.stdout);
    expect(shown.listen).toEqual({ host: '0.0.0.0', port: 9443, front: 'threads' }); // the default front is shown too
    expect(shown.store.url).toBe('postgres://tokenwarden:***@db.example:5432/tokenwarden');
    expect(shown.upstream).toEqual({ password: '[REDACTED]', clientSecret: '[REDACTED]' });
    expect(shown.notifications.webhookUrl).toBe('[REDACTED]');
    expect(shown.verify.cacheSize).toBe(100000); // defaults are filled in
    for (const secret of ['s3cr3t-pw', 'hunter2-upstream', 'shh-client', 'webhook-credential']) expect(res.stdout + res.stderr).not.toContain(secret);
    expect(res.stderr).toContain('"upstream" is not a known setting');
  });

  it('prints JSON with -o json, reading TOKENWARDEN_CONFIG', async () => {
    const path = file('plain.yaml', 'log: { level: warn }\n');
    const res = await runCli(['-o', 'json', 'config', 'check'], { TOKENWARDEN_CONFIG: path });
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout).log.level).toBe('warn');
  });

  it.each([
    ['invalid YAML', 'listen: [unclosed\n', /is not valid YAML/],
    ['a list instead of a mapping', '- a\n- b\n', /must hold a YAML mapping/],
    ['a wrong type', 'verify:\n  failureLimit: many\n', /verify\.failureLimit: expected integer, got "many"/],
    ['default longer than maximum', 'tokens: { maxLifetime: 1d, defaultLifetime: 2d }\n', /defaultLifetime is longer than tokens\.maxLifetime/],
    ['missing TLS files', 'tls: { cert: /nonexistent/tls.crt, key: /nonexistent/tls.key }\n', /tls: cannot read \/nonexistent\/tls\.crt \(ENOENT\); mount the certificate Secret/],
    ['a broken PostgreSQL URL', 'store: { url: "postgres://user:p@ss:word@" }\n', /store\.url: not a valid URL/],
  ])('exits 2 on %s, saying what to fix', async (_what, text, message) => {
    const res = await runCli(['config', 'check', '-c', file(`bad-${Math.random().toString(36).slice(2)}.yaml`, text)]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(message);
    expect(res.stderr).toContain('run "tokenwarden config check" again');
    expect(res.stdout).toBe('');
  });

  it('exits 2 when the file cannot be read, and when a TLS key does not match its certificate', async () => {
    const missing = await runCli(['config', 'check', '-c', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read');
    const notPem = file('not.pem', 'this is not a certificate\n');
    const res = await runCli(['config', 'check'], { TOKENWARDEN_TLS_CERT: notPem, TOKENWARDEN_TLS_KEY: notPem });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/tls: the certificate and key cannot be used together/);
  });
});
