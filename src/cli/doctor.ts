import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Diagnosis } from '../observe/doctor/diagnose.js';
import type { HttpFinding, TlsFinding } from '../observe/doctor/probe.js';
import type { TokenSource } from '../observe/doctor/token-source.js';
import type { ParseFailure } from '../token/format.js';
import { type ApiClient, CliError, EXIT } from './client.cjs';
import type { OutputFormat } from './output.cjs';
import { readStdin } from './stdin.cjs';

type Ctx = () => { client: ApiClient; output: OutputFormat };
const collect = (value: string, prev: string[]) => [...prev, ...value.split(/[ ,]+/).filter(Boolean)];

interface DoctorOptions {
  file?: string;
  env?: string;
  k8sSecret?: string;
  kubeconfig?: string;
  context?: string;
  stdin?: boolean;
  url?: string;
  scope: string[];
  satisfy?: 'all' | 'any';
  ca?: string;
  serverName?: string;
  header?: string;
}

export interface DoctorReport {
  token: string | null;
  from: string;
  works: boolean;
  /** What went wrong before the token could be checked (unreadable file, missing Secret key). */
  problem?: string;
  notes: string[];
  /** The format check done here, without the server. */
  localParse?: 'ok' | ParseFailure;
  diagnosis?: Diagnosis;
  /** Why the server-side facts are missing, when they are. */
  serverUnavailable?: string;
  url?: { url: string; tls?: TlsFinding; http?: HttpFinding; retriedAsBearer?: HttpFinding };
}

export function registerDoctorCommand(program: Command, ctx: Ctx): void {
  program
    .command('doctor')
    .description('explain in plain words why a token gets 401 or 403 (or why it works), optionally at a URL; never prints the secret')
    .option('-f, --file <path>', 'read the token from a file (a credentials_file); --token-file is your own credential')
    .option('--env <name>', 'read the token from an environment variable')
    .option('--k8s-secret <ns/name#key>', 'read the token from a Kubernetes Secret key (as bearerTokenSecret does)')
    .option('--kubeconfig <path>', 'kubeconfig for --k8s-secret (default: $KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--context <name>', 'kubeconfig context for --k8s-secret')
    .option('--stdin', 'read the token from stdin (the default when no other source is given)')
    .option('-u, --url <url>', 'also try the token at this URL and explain its answer (TLS, WWW-Authenticate)')
    .option('-s, --scope <scope>', 'a scope the endpoint requires (repeatable; learnt from a 403 challenge otherwise)', collect, [])
    .option('--satisfy <all|any>', 'whether all or any of the scopes are required', 'all')
    .option('--ca <file>', 'CA certificate (PEM) to trust at --url, like Prometheus tls_config.ca_file')
    .option('--server-name <name>', 'TLS name to expect at --url, like Prometheus tls_config.server_name')
    .option('--header <name>', 'send the token in this header at --url, as the bare value (default: Authorization: Bearer, or the scheme the value carries)')
    .action(async (o: DoctorOptions) => {
      const given = [o.file, o.env, o.k8sSecret, o.stdin].filter(Boolean).length;
      if (given > 1) throw new CliError('give one of --file, --env, --k8s-secret or --stdin', EXIT.usage);
      if (o.satisfy && o.satisfy !== 'all' && o.satisfy !== 'any') throw new CliError('--satisfy must be "all" or "any"', EXIT.usage);
      let url: URL | undefined;
      if (o.url) {
        try {
          url = new URL(o.url);
        } catch {
          throw new CliError(`--url "${o.url}" is not a URL; write e.g. https://exporter.example:9100/metrics`, EXIT.usage);
        }
      }
      const source: TokenSource = o.file
        ? { kind: 'file', path: o.file }
        : o.env
          ? { kind: 'env', name: o.env }
          : o.k8sSecret
            ? { kind: 'k8s-secret', ref: o.k8sSecret, kubeconfig: o.kubeconfig, context: o.context }
            : { kind: 'stdin', read: readStdin };
      const { client, output } = ctx();
      const deps = await loadDeps();
      const report = await runDoctor(deps, client, source, o, url);
      if (output === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(render(report, deps));
      if (!report.works) throw new CliError(report.problem ? 'the token could not be read' : 'the token does not work (see above)', EXIT.auth);
    });
}

/** What the doctor uses, loaded by its action so that other commands do not pay for it. */
const loadDeps = async () => {
  const [diagnose, probe, tokenSource, format] = await Promise.all([
    import('../observe/doctor/diagnose.js'),
    import('../observe/doctor/probe.js'),
    import('../observe/doctor/token-source.js'),
    import('../token/format.js'),
  ]);
  return { ...diagnose, ...probe, ...tokenSource, ...format };
};
type Deps = Awaited<ReturnType<typeof loadDeps>>;

async function runDoctor(deps: Deps, client: ApiClient, source: TokenSource, o: DoctorOptions, url: URL | undefined): Promise<DoctorReport> {
  const { readToken, unwrap, parseToken, publicForm, probeTls, probeHttp } = deps;
  const read = await readToken(source);
  if (!read.ok) return { token: null, from: read.from, works: false, problem: read.problem, notes: [] };
  const { token, notes, scheme } = unwrap(read.value);
  const parsed = parseToken(token);
  const report: DoctorReport = { token: publicForm(token), from: read.from, works: false, notes, localParse: parsed.ok ? 'ok' : parsed.reason };
  let scopes = o.scope;

  if (url) {
    report.url = { url: url.toString() };
    const probeOptions = { ca: o.ca ? readFileSync(o.ca, 'utf8') : undefined, serverName: o.serverName };
    if (url.protocol === 'https:') report.url.tls = await probeTls(url, probeOptions);
    if (!report.url.tls?.problems.length) {
      // Try it the way the client holds it: a scheme written into the value is sent as such.
      const asGiven = o.header
        ? { name: o.header, value: token, shown: report.token! }
        : { name: 'authorization', value: `${scheme && scheme.toLowerCase() !== 'bearer' ? scheme : 'Bearer'} ${token}`, shown: `${scheme && scheme.toLowerCase() !== 'bearer' ? scheme : 'Bearer'} ${report.token}` };
      report.url.http = await probeHttp(url, asGiven, probeOptions);
      if (!report.url.http.ok && (o.header || (scheme && scheme.toLowerCase() !== 'bearer'))) {
        report.url.retriedAsBearer = await probeHttp(url, { name: 'authorization', value: `Bearer ${token}`, shown: `Bearer ${report.token}` }, probeOptions);
      }
      const challenge = (report.url.retriedAsBearer ?? report.url.http).challenge;
      if (!scopes.length && challenge?.params.error === 'insufficient_scope' && challenge.params.scope) scopes = challenge.params.scope.split(' ');
    }
  }

  try {
    const file = source.kind === 'file' ? { file: resolve(source.path) } : {};
    report.diagnosis = await client.request<Diagnosis>('POST', '/api/v1/doctor', { token: read.value, ...(scopes.length ? { scopes } : {}), satisfy: o.satisfy ?? 'all', ...file });
    report.notes = report.diagnosis.notes;
  } catch (err) {
    report.serverUnavailable = err instanceof CliError ? err.message : (err as Error).message;
  }
  // An upstream's token is not tokenwarden's to accept: only the endpoint (--url) decides, the same way every run.
  const serverOk = report.diagnosis ? report.diagnosis.status === 200 || (!!report.diagnosis.upstream && !!url) : parsed.ok;
  const urlOk = !report.url || (!report.url.tls?.problems.length && !!report.url.http?.ok);
  report.works = serverOk && urlOk && !report.notes.some((n) => n.includes('only accepts'));
  return report;
}

/** Plain words, one finding per paragraph. */
export function render(r: DoctorReport, { describeParseFailure }: Pick<Deps, 'describeParseFailure'>): string {
  const out: string[] = [];
  if (r.problem) {
    out.push(`Could not read the token from ${r.from}:`, `  ${r.problem}`);
    return `${out.join('\n')}\n`;
  }
  out.push(`Token ${r.token} (from ${r.from})`);
  const d = r.diagnosis;
  if (d) {
    const verdict = d.upstream
      ? `UPSTREAM TOKEN (binding ${d.upstream.binding})`
      : d.status === 200
        ? 'WORKS'
        : d.status === 401
          ? `REFUSED (401, ${d.reason})`
          : `FORBIDDEN (403, ${d.reason})`;
    out.push(`${verdict}: ${d.explanation}.`);
  } else {
    out.push(`tokenwarden could not be asked (${r.serverUnavailable}).`);
    if (r.localParse && r.localParse !== 'ok') out.push(`REFUSED (401, malformed): ${describeParseFailure(r.localParse)}.`);
    else out.push('Its format is valid; whether it is known, revoked, expired or lacks a scope needs the server: set TOKENWARDEN_TOKEN to a token with token.introspect or admin:token.');
  }
  for (const n of r.notes) out.push(`Note: ${n}.`);
  for (const h of d?.hints ?? []) out.push(`To fix: ${h}.`);
  if (r.url) {
    out.push(`At ${r.url.url}:`);
    for (const p of r.url.tls?.problems ?? []) out.push(`  TLS: ${p}.`);
    if (r.url.tls?.problems.length) out.push('  The request was not sent: fix TLS first.');
    if (r.url.http) {
      out.push(`  Sent "${r.url.http.sentAs}": ${r.url.http.explanation}.`);
      if (r.url.retriedAsBearer) {
        out.push(
          r.url.retriedAsBearer.ok
            ? '  Sent as "Authorization: Bearer …" instead, it works: make the client send the Bearer scheme.'
            : `  Sent as "Authorization: Bearer …" instead: ${r.url.retriedAsBearer.explanation}.`,
        );
      }
      if (d?.status === 200 && !r.url.http.ok && !r.url.retriedAsBearer?.ok && r.url.http.status === 401) {
        out.push('  tokenwarden accepts this token, yet the endpoint refused it: the endpoint asks another tokenwarden, or a proxy in between does not pass the Authorization header on.');
      }
    }
  }
  return `${out.join('\n')}\n`;
}
