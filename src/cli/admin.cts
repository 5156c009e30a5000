import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { ApiClient, type ApiClient as Client, CliError, EXIT, cliConfigPath } from './client.cjs';
import { type OutputFormat, print } from './output.cjs';
import { readStdin } from './stdin.cjs';

type Ctx = () => { client: Client; output: OutputFormat };
const collect = (value: string, prev: string[]) => [...prev, ...value.split(',').map((s) => s.trim()).filter(Boolean)];

const ACTOR_COLUMNS: [string, (a: any) => unknown][] = [
  ['name', (a) => a.name],
  ['kind', (a) => a.kind],
  ['roles', (a) => a.roles],
  ['scopes', (a) => a.effectiveScopes],
  ['disabled', (a) => (a.disabled ? 'yes' : '')],
];

export function registerAdminCommands(program: Command, ctx: Ctx): void {
  program
    .command('whoami')
    .description('show the identity and scopes of your token')
    .action(async () => {
      const { client, output } = ctx();
      print(output, await client.request('GET', '/api/v1/whoami'), [
        ['actor', (w) => w.actor],
        ['token', (w) => w.tokenId],
        ['scopes', (w) => w.scopes],
      ]);
    });

  program
    .command('login')
    .description('check a token against the server and save server + token to the CLI config file (mode 0600)')
    .option('--token-stdin', 'read the token from stdin')
    .action(async (o: { tokenStdin?: boolean }) => {
      const { client } = ctx();
      let token = client.settings.token;
      if (o.tokenStdin) token = (await readStdin()).trim();
      if (!token) throw new CliError('give the token with --token, TOKENWARDEN_TOKEN or --token-stdin', EXIT.usage);
      const who = await new ApiClient({ ...client.settings, token }).request('GET', '/api/v1/whoami');
      const path = cliConfigPath();
      const { stringify } = require('yaml') as typeof import('yaml');
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, stringify({ server: client.settings.server, token }), { mode: 0o600 });
      process.stdout.write(`signed in as ${who.actor}; saved to ${path}\n`);
    });

  const actor = program.command('actor').description('identities: users and bot- service identities');
  actor
    .command('create <name>')
    .description('create an identity (service names must start with bot-)')
    .option('-k, --kind <kind>', 'user or service', undefined)
    .option('-r, --role <role>', 'a role (repeatable)', collect, [])
    .option('-s, --scope <scope>', 'a scope granted directly (repeatable)', collect, [])
    .option('-d, --description <text>', 'what it is for')
    .action(async (name: string, o: { kind?: string; role: string[]; scope: string[]; description?: string }) => {
      const { client, output } = ctx();
      // The naming rule is an ES module: imported only when the kind is not given.
      const kind = o.kind ?? (await import('../authority/catalogue.js')).kindForName(name);
      print(
        output,
        await client.request('POST', '/api/v1/actors', { name, kind, roles: o.role, scopes: o.scope, ...(o.description ? { description: o.description } : {}) }),
        ACTOR_COLUMNS,
      );
    });
  actor
    .command('list')
    .action(async () => {
      const { client, output } = ctx();
      print(output, (await client.request('GET', '/api/v1/actors')).items, ACTOR_COLUMNS);
    });
  actor
    .command('show <name>')
    .action(async (name: string) => {
      const { client, output } = ctx();
      print(output, await client.request('GET', `/api/v1/actors/${encodeURIComponent(name)}`), ACTOR_COLUMNS);
    });
  actor
    .command('update <name>')
    .description('replace roles or direct scopes, change the description, disable or enable')
    .option('-r, --role <role>', 'the roles (replaces the list; repeatable)', collect)
    .option('-s, --scope <scope>', 'the direct scopes (replaces the list; repeatable)', collect)
    .option('-d, --description <text>')
    .option('--disable')
    .option('--enable')
    .action(async (name: string, o: { role?: string[]; scope?: string[]; description?: string; disable?: boolean; enable?: boolean }) => {
      const { client, output } = ctx();
      const body = {
        ...(o.role ? { roles: o.role } : {}),
        ...(o.scope ? { scopes: o.scope } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
        ...(o.disable ? { disabled: true } : o.enable ? { disabled: false } : {}),
      };
      print(output, await client.request('PATCH', `/api/v1/actors/${encodeURIComponent(name)}`, body), ACTOR_COLUMNS);
    });
  actor
    .command('delete <name>')
    .description('disable an identity and revoke all its tokens')
    .action(async (name: string) => {
      const { client, output } = ctx();
      const res = await client.request('DELETE', `/api/v1/actors/${encodeURIComponent(name)}`);
      print(output, res, [['revoked tokens', (r) => r.revoked]]);
    });

  const role = program.command('role').description('roles bundle scopes');
  const ROLE_COLUMNS: [string, (r: any) => unknown][] = [
    ['name', (r) => r.name],
    ['scopes', (r) => r.scopes],
    ['builtin', (r) => (r.builtin ? 'yes' : '')],
    ['description', (r) => r.description],
  ];
  role.command('list').action(async () => {
    const { client, output } = ctx();
    print(output, (await client.request('GET', '/api/v1/roles')).items, ROLE_COLUMNS);
  });
  role
    .command('create <name>')
    .requiredOption('-s, --scope <scope>', 'a scope (repeatable)', collect, [])
    .option('-d, --description <text>')
    .action(async (name: string, o: { scope: string[]; description?: string }) => {
      const { client, output } = ctx();
      print(output, await client.request('POST', '/api/v1/roles', { name, scopes: o.scope, ...(o.description ? { description: o.description } : {}) }), ROLE_COLUMNS);
    });
  role
    .command('update <name>')
    .option('-s, --scope <scope>', 'the scopes (replaces the list; repeatable)', collect)
    .option('-d, --description <text>')
    .action(async (name: string, o: { scope?: string[]; description?: string }) => {
      const { client, output } = ctx();
      const body = { ...(o.scope ? { scopes: o.scope } : {}), ...(o.description !== undefined ? { description: o.description } : {}) };
      print(output, await client.request('PATCH', `/api/v1/roles/${encodeURIComponent(name)}`, body), ROLE_COLUMNS);
    });
  role.command('delete <name>').action(async (name: string) => {
    const { client } = ctx();
    await client.request('DELETE', `/api/v1/roles/${encodeURIComponent(name)}`);
    process.stdout.write(`role ${name} deleted\n`);
  });

  const scope = program.command('scope').description('scopes (permissions)');
  scope.command('list').action(async () => {
    const { client, output } = ctx();
    print(output, (await client.request('GET', '/api/v1/scopes')).items, [
      ['name', (s) => s.name],
      ['builtin', (s) => (s.builtin ? 'yes' : '')],
      ['description', (s) => s.description],
    ]);
  });
  scope
    .command('create <name>')
    .option('-d, --description <text>')
    .action(async (name: string, o: { description?: string }) => {
      const { client, output } = ctx();
      print(output, await client.request('POST', '/api/v1/scopes', { name, ...(o.description ? { description: o.description } : {}) }), [['name', (s) => s.name]]);
    });

  program
    .command('audit')
    .description('the audit log, newest first')
    .option('-a, --actor <name>', 'who acted')
    .option('--action <prefix>', 'e.g. token.revoke, token.')
    .option('--target <id>', 'a token id, identity or binding name')
    .option('--since <time>', 'RFC 3339')
    .option('--limit <n>', 'rows', '50')
    .action(async (o: { actor?: string; action?: string; target?: string; since?: string; limit: string }) => {
      const { client, output } = ctx();
      const q = new URLSearchParams(Object.entries(o).filter(([, v]) => v) as [string, string][]);
      const res = await client.request('GET', `/api/v1/audit?${q}`);
      print(output, res.items, [
        ['at', (a) => a.at],
        ['actor', (a) => a.actor],
        ['action', (a) => a.action],
        ['target', (a) => a.targetId],
        ['from', (a) => a.sourceIp],
        ['detail', (a) => JSON.stringify(a.detail)],
      ]);
    });
}
