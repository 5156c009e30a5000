import type { Command } from 'commander';
import { type OutputFormat, print, relative } from './output.cjs';
import { type ApiClient, CliError, EXIT } from './client.cjs';

type Ctx = () => { client: ApiClient; output: OutputFormat };

const collect = (value: string, prev: string[]) => [...prev, ...value.split(',').map((s) => s.trim()).filter(Boolean)];

export const TOKEN_COLUMNS: [string, (t: any) => unknown][] = [
  ['id', (t) => t.id],
  ['name', (t) => t.name],
  ['actor', (t) => t.actor],
  ['scopes', (t) => t.scopes],
  ['state', (t) => t.state],
  ['expires', (t) => relative(t.expiresAt)],
  ['last used', (t) => (t.lastUsed ? `${relative(t.lastUsed.at)} from ${t.lastUsed.ip ?? '?'}` : 'never')],
  // The token that minted this one: it expires no later and is revoked with it.
  ['parent', (t) => t.parent],
];

function printCreated(output: OutputFormat, created: any): void {
  if (output === 'json') return print('json', created);
  process.stdout.write(`${created.token}\n`);
  process.stderr.write(
    `token ${created.id} for ${created.actor} (${created.scopes.join(' ')}), expires ${created.expiresAt}.\n` +
      (created.parent ? `It was minted by your token ${created.parent}: it is revoked with it${created.expiryCappedBy ? ', and its expiry was capped at that token\'s' : ' and never outlives it'}.\n` : '') +
      'This is the only time the token is shown: store it now.\n',
  );
}

export function registerTokenCommands(program: Command, ctx: Ctx): void {
  const token = program.command('token').description('mint, list, show, replace and revoke tokens');

  token
    .command('create')
    .description('mint a token; prints the secret once on stdout')
    .requiredOption('-n, --name <name>', 'what the token is for, e.g. prometheus-scrape')
    .option('-s, --scope <scope>', 'a scope (repeat or comma-separate)', collect, [])
    .option('-a, --actor <name>', 'identity to issue for (default: yourself; others need admin:token)')
    .option('-e, --expires-in <duration>', 'lifetime, e.g. 30d, 12h (default: server policy)')
    .option('--expires-at <time>', 'absolute expiry (RFC 3339)')
    .action(async (o: { name: string; scope: string[]; actor?: string; expiresIn?: string; expiresAt?: string }) => {
      const { client, output } = ctx();
      const created = await client.request('POST', '/api/v1/tokens', {
        name: o.name,
        scopes: o.scope,
        ...(o.actor ? { actor: o.actor } : {}),
        ...(o.expiresIn ? { expiresIn: o.expiresIn } : {}),
        ...(o.expiresAt ? { expiresAt: o.expiresAt } : {}),
      });
      printCreated(output, created);
    });

  token
    .command('list')
    .description('list tokens with expiry and last use (never secrets)')
    .option('-a, --actor <name>', 'only this identity')
    .option('--state <state>', 'active, expired or revoked')
    .option('--search <text>', 'name contains, or exact id')
    .action(async (o: { actor?: string; state?: string; search?: string }) => {
      const { client, output } = ctx();
      const q = new URLSearchParams(Object.entries(o).filter(([, v]) => v) as [string, string][]);
      const res = await client.request('GET', `/api/v1/tokens${q.size ? `?${q}` : ''}`);
      print(output, output === 'json' ? res.items : res.items, TOKEN_COLUMNS);
    });

  token
    .command('show <id>')
    .description('show one token')
    .action(async (id: string) => {
      const { client, output } = ctx();
      print(output, await client.request('GET', `/api/v1/tokens/${encodeURIComponent(id)}`), output === 'table' ? [...TOKEN_COLUMNS, ['revoked', (t) => t.revokedAt]] : undefined);
    });

  token
    .command('revoke <id...>')
    .description('revoke one or more tokens (and every token each one minted)')
    .option('-r, --reason <text>', 'why (kept in the audit log)')
    .option('--force', 'also a token that a binding delivers (its consumer breaks until the binding heals), or the one you are signed in with')
    .action(async (ids: string[], o: { reason?: string; force?: boolean }) => {
      const { client, output } = ctx();
      const results = [];
      const body = { ...(o.reason ? { reason: o.reason } : {}), ...(o.force ? { force: true } : {}) };
      for (const id of ids) results.push(await client.request('POST', `/api/v1/tokens/${encodeURIComponent(id)}/revoke`, body));
      print(output, results, TOKEN_COLUMNS);
    });

  token
    .command('replace <id>')
    .description('mint a successor (same identity, name, scopes); the old one is revoked now or after --grace')
    .option('-g, --grace <duration>', 'keep the old token valid this long, e.g. 10m')
    .option('-e, --expires-in <duration>', "the successor's lifetime (default: the old one's)")
    .action(async (id: string, o: { grace?: string; expiresIn?: string }) => {
      const { client, output } = ctx();
      const created = await client.request('POST', `/api/v1/tokens/${encodeURIComponent(id)}/replace`, {
        ...(o.grace ? { grace: o.grace } : {}),
        ...(o.expiresIn ? { expiresIn: o.expiresIn } : {}),
      });
      printCreated(output, created);
    });

  token
    .command('unused')
    .description('live tokens not used for N days (seed 004: "last synced at"), with an optional revoke')
    .option('-d, --days <n>', 'days without use', '30')
    .option('--revoke', 'revoke every token listed, after a confirmation read from stdin')
    .option('-y, --yes', 'with --revoke: do not ask')
    .option('--include-managed', 'also list tokens that a binding delivers and rotates')
    .action(async (o: { days: string; revoke?: boolean; yes?: boolean; includeManaged?: boolean }) => {
      const { client, output } = ctx();
      const managed = o.includeManaged ? '&includeManaged=true' : '';
      const items: { id: string; actor: string; name: string }[] = [];
      // Every page: the report has no cap, the oldest unused tokens come first.
      for (let cursor: string | null = ''; cursor !== null; ) {
        const page: string = `/api/v1/tokens/unused?days=${encodeURIComponent(o.days)}${managed}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const res: { items: typeof items; next?: string | null } = await client.request('GET', page);
        items.push(...res.items);
        cursor = res.next ?? null;
      }
      print(output, items, TOKEN_COLUMNS);
      if (o.revoke && items.length) {
        if (!o.yes && !(await confirm(`Revoke these ${items.length} token(s)? [y/N] `))) {
          throw new CliError('not confirmed: nothing was revoked (answer "y", or pass --yes)', EXIT.usage);
        }
        for (const t of items) {
          // --include-managed asked for the tokens bindings deliver too: revoking them was confirmed above.
          await client.request('POST', `/api/v1/tokens/${encodeURIComponent(t.id)}/revoke`, { reason: `unused for ${o.days} days`, ...(o.includeManaged ? { force: true } : {}) });
          process.stderr.write(`revoked ${t.id} (${t.actor}/${t.name})\n`);
        }
      }
    });
}

/** Asks on stderr and reads one line from stdin; anything but y/yes is a no (also a closed stdin). */
function confirm(question: string): Promise<boolean> {
  process.stderr.write(question);
  return new Promise((resolve) => {
    let data = '';
    const done = () => {
      process.stdin.off('data', onData);
      process.stdin.pause();
      resolve(/^\s*y(es)?\s*$/i.test(data.split('\n')[0] ?? ''));
    };
    const onData = (c: Buffer | string) => {
      data += c;
      if (data.includes('\n')) done();
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', done);
  });
}
