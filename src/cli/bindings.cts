import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type ApiClient, CliError, EXIT } from './client.cjs';
import { type OutputFormat, print, relative } from './output.cjs';

type Ctx = () => { client: ApiClient; output: OutputFormat };

const sinkText = (s: any) => (s.kind === 'file' ? `file:${s.path}` : `secret:${s.namespace}/${s.name}#${s.key ?? 'token'}`);

/** A sink and what it holds: "file:/p ok", "secret:ns/n#k write-failed". */
const sinkWithState = (b: any) =>
  (b.sinkStates as any[] | undefined)?.length ? b.sinkStates.map((st: any) => `${st.sink} ${st.status}`) : b.sinks.map(sinkText);

/** The token consumers hold: the binding's, or — before every sink took a first one — the one some sinks hold already. */
const tokenText = (b: any) => b.tokenId ?? (b.sinkStates as any[] | undefined)?.find((st) => st.status === 'ok')?.tokenId ?? null;

/** The next thing the controller does: a retry while failing (never a time already past), else the scheduled rotation. */
const nextText = (b: any) => (b.retrying ? `retry ${relative(b.nextAttemptAt)}` : relative(b.nextAttemptAt ?? b.nextRotationAt));

export const BINDING_COLUMNS: [string, (b: any) => unknown][] = [
  ['name', (b) => b.name],
  ['actor', (b) => b.actor],
  ['scopes', (b) => b.scopes],
  ['state', (b) => (b.inFlight ? `${b.state} (${b.inFlight.step})` : b.state)],
  ['token', tokenText],
  ['expires', (b) => relative(b.expiresAt)],
  ['next attempt', nextText],
  ['last outcome', (b) => b.lastOutcome],
  ['sinks', sinkWithState],
  ['error', (b) => b.lastError],
];

/** `binding show`, below the row: one line per sink, so the failing one and the healthy ones are told apart. */
function printSinkStates(b: any): void {
  const states = (b.sinkStates as any[] | undefined) ?? [];
  if (!states.length) return;
  process.stdout.write('\nSINKS\n');
  for (const st of states) {
    const what = st.status === 'ok' ? `holds ${st.tokenId}, which verifies` : st.detail ? `${st.status}: ${st.detail}` : st.status;
    process.stdout.write(`  ${st.sink}  ${what}${st.checkedAt ? ` (checked ${relative(st.checkedAt)})` : ''}\n`);
  }
}

const HISTORY_COLUMNS: [string, (r: any) => unknown][] = [
  ['seq', (r) => r.seq],
  ['reason', (r) => r.reason],
  ['step', (r) => r.step],
  ['outcome', (r) => r.outcome],
  ['old', (r) => r.oldTokenId],
  ['new', (r) => r.newTokenId],
  ['started', (r) => r.startedAt],
  ['finished', (r) => r.finishedAt],
  ['attempts', (r) => r.attempts],
  ['error', (r) => r.lastError ?? r.note],
];

/** Reads one binding, a list, or a `bindings:` list (the config file's shape) from YAML or JSON. */
export async function readBindingFile(path: string): Promise<Record<string, unknown>[]> {
  const { parse: parseYaml } = require('yaml') as typeof import('yaml');
  let text: string;
  try {
    text = path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, EXIT.usage);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new CliError(`${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`, EXIT.usage);
  }
  const list = Array.isArray(doc) ? doc : doc && typeof doc === 'object' && Array.isArray((doc as any).bindings) ? (doc as any).bindings : [doc];
  if (!list.length || list.some((b: unknown) => !b || typeof b !== 'object' || typeof (b as any).name !== 'string')) {
    throw new CliError(`${path} must hold a binding (a mapping with a name), a list of them, or a "bindings:" list`, EXIT.usage);
  }
  return list;
}

export function registerBindingCommands(program: Command, ctx: Ctx): void {
  const binding = program.command('binding').description('delivery bindings: keep a valid token in a file or Kubernetes Secret, rotated before it expires');
  const path = (name: string) => `/api/v1/bindings/${encodeURIComponent(name)}`;

  binding
    .command('list')
    .description('bindings with state, expiry, next attempt (a retry while failing) and what each sink holds')
    .action(async () => {
      const { client, output } = ctx();
      print(output, (await client.request('GET', '/api/v1/bindings')).items, BINDING_COLUMNS);
    });

  binding
    .command('show <name>')
    .action(async (name: string) => {
      const { client, output } = ctx();
      const b = await client.request('GET', path(name));
      print(output, b, [...BINDING_COLUMNS, ['last success', (x) => x.lastSuccessAt], ['origin', (x) => x.origin]]);
      if (output !== 'json') printSinkStates(b);
    });

  binding
    .command('apply')
    .description('create or update bindings from a YAML file (one binding, a list, or a bindings: list); "-" reads stdin')
    .requiredOption('-f, --file <file>', 'the YAML or JSON file')
    .action(async (o: { file: string }) => {
      const { client, output } = ctx();
      const results = [];
      for (const spec of await readBindingFile(o.file)) results.push(await client.request('PUT', path(spec.name as string), spec));
      print(output, results, BINDING_COLUMNS);
    });

  binding
    .command('delete <name>')
    .description('remove a binding: its tokens are revoked and what it delivered is deleted')
    .action(async (name: string) => {
      const { client, output } = ctx();
      const res = await client.request('DELETE', path(name));
      if (output === 'json') return print(output, res);
      process.stdout.write(
        res.state === 'removed' ? `binding ${name} removed; its tokens are revoked and its sinks deleted\n` : `binding ${name} is being removed (${res.lastError ?? 'in progress'})\n`,
      );
    });

  binding
    .command('rotate <name>')
    .description('rotate now: mint, deliver, confirm, grace, revoke the old token')
    .action(async (name: string) => {
      const { client, output } = ctx();
      print(output, await client.request('POST', `${path(name)}/rotate`), BINDING_COLUMNS);
    });

  binding
    .command('history <name>')
    .description('rotations of a binding, newest first')
    .option('--limit <n>', 'rows', '20')
    .action(async (name: string, o: { limit: string }) => {
      const { client, output } = ctx();
      print(output, (await client.request('GET', `${path(name)}/history?limit=${encodeURIComponent(o.limit)}`)).items, HISTORY_COLUMNS);
    });
}
