import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { ResolvedConfig } from '../config/server-config.js';
import { CliError, EXIT } from './client.cjs';
import type { OutputFormat } from './output.cjs';

/**
 * Keys whose values are credentials wherever they appear (upstream sources, bindings, …).
 * A webhook URL counts: chat webhooks carry their credential in the path.
 */
const SECRET_FIELD = /(password|passphrase|secret|token|credentials?|apikey|api_key|privatekey|webhookurl)$/i;

/** What `config check` uses, loaded by its action so that other commands do not pay for the schema, YAML and database libraries. */
const loadDeps = async () => {
  const [config, problems, tls, format, yaml, connect] = await Promise.all([
    import('../config/server-config.js'),
    import('../config/problems.js'),
    import('../tls.js'),
    import('../token/format.js'),
    import('yaml'),
    import('../store/connect.js'),
  ]);
  return { ...config, ...problems, ...tls, ...format, parseYaml: yaml.parse, toYaml: yaml.stringify, describeLocation: connect.describeLocation };
};
type Deps = Awaited<ReturnType<typeof loadDeps>>;

/** The configuration as it will be used, with every credential replaced. */
export function redactConfig(value: unknown, deps: Pick<Deps, 'describeLocation' | 'redactTokens'>, key = ''): unknown {
  const { describeLocation, redactTokens } = deps;
  if (Array.isArray(value)) return value.map((v) => redactConfig(v, deps));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactConfig(v, deps, k)]));
  }
  if (typeof value !== 'string') return value;
  if (SECRET_FIELD.test(key)) return '[REDACTED]';
  // a password inside a URL (postgres://user:pass@host/db)
  const withoutUserinfoSecret = /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(value) ? describeLocation(value.replace(/^postgresql:/, 'postgres:')) : value;
  return redactTokens(withoutUserinfoSecret);
}

/** Checks that need the machine, not just the schema: files that must be readable, directories that must be writable. */
function environmentProblems(config: ResolvedConfig, { describeLocation, loadCertificatePair }: Pick<Deps, 'describeLocation' | 'loadCertificatePair'>): string[] {
  const problems: string[] = [];
  if (config.tls) {
    try {
      loadCertificatePair(config.tls);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      problems.push(
        e.code === 'ENOENT' || e.code === 'EACCES'
          ? `tls: cannot read ${e.path ?? 'the certificate or key'} (${e.code}); mount the certificate Secret there or fix tls.cert / tls.key`
          : `tls: the certificate and key cannot be used together (${e.message}); check that tls.key is the private key of tls.cert`,
      );
    }
  }
  const url = config.store.url;
  if (/^postgres(ql)?:/.test(url)) {
    try {
      const parsed = new URL(url);
      if (!parsed.hostname) problems.push('store.url: the PostgreSQL URL has no host; write postgres://user:password@host:5432/database');
    } catch {
      problems.push('store.url: not a valid URL; write postgres://user:password@host:5432/database (percent-encode special characters in the password)');
    }
  } else {
    let dir = dirname(describeLocation(url));
    while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      problems.push(`store.url: ${dir} is not writable, so the SQLite file ${describeLocation(url)} cannot be created; point store.url at a writable volume (e.g. /var/lib/tokenwarden/tokenwarden.db) or use postgres://`);
    }
  }
  return problems;
}

/**
 * Kubernetes Secret sinks need a cluster: without --online, that a cluster is configured at all
 * (a kubeconfig or a pod's service account); with --online, that the API answers and RBAC allows
 * each Secret's verbs (SelfSubjectAccessReview; nothing is written).
 */
async function kubernetesProblems(config: ResolvedConfig, online: boolean): Promise<string[]> {
  const targets = (config.bindings ?? []).flatMap((b, i) =>
    b.sinks.flatMap((s) => (s.kind === 'kubernetes-secret' ? [{ namespace: s.namespace, name: s.name, owner: `bindings[${i}] "${b.name}" (secret ${s.namespace}/${s.name})` }] : [])),
  );
  if (!targets.length && !online) return [];
  const { kubeConfigOptionsFrom } = await import('../kubernetes/kube-config.js');
  const { kubeClients, loadKubeConfig } = await import('../kubernetes/client.js');
  let clients;
  try {
    clients = kubeClients(loadKubeConfig(kubeConfigOptionsFrom(config.kubernetes)));
  } catch (err) {
    return targets.length || config.kubernetes ? [`kubernetes: ${(err as Error).message}`] : [];
  }
  if (!online) return [];
  const { secretAccessProblems } = await import('../kubernetes/access.js');
  return secretAccessProblems(clients, targets);
}

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('inspect the server configuration');
  config
    .command('check')
    .description('validate the configuration file and environment, and print the effective configuration (credentials redacted); exit 2 on problems')
    .option('-c, --config <file>', 'YAML configuration file (env TOKENWARDEN_CONFIG)')
    .option('--online', 'also contact what the configuration names: the Kubernetes API and its RBAC for each Secret sink')
    .action(async (opts: { config?: string; online?: boolean }) => {
      const deps = await loadDeps();
      const { ConfigError, loadConfig, ServerConfigSchema, unknownTopLevelKeys, parseYaml, toYaml, takeoverWarnings } = deps;
      const file = opts.config ?? process.env.TOKENWARDEN_CONFIG;
      let resolved: ResolvedConfig;
      try {
        resolved = loadConfig({ file });
      } catch (err) {
        if (err instanceof ConfigError) throw new CliError(`${file ?? 'the environment'}: ${err.message}\nfix the settings above and run "tokenwarden config check" again`, EXIT.usage);
        throw err;
      }
      const problems = [...environmentProblems(resolved, deps), ...(await kubernetesProblems(resolved, opts.online === true))];
      if (problems.length) {
        throw new CliError(`${new ConfigError(problems).message}\nfix the settings above and run "tokenwarden config check" again`, EXIT.usage);
      }
      const warnings = file ? unknownTopLevelKeys(ServerConfigSchema, (parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>) ?? {}) : [];
      for (const key of warnings) process.stderr.write(`warning: ${file}: "${key}" is not a known setting and is ignored; check its spelling\n`);
      for (const w of takeoverWarnings(resolved)) process.stderr.write(`warning: ${w}\n`);
      const { durations: _internal, ...effective } = resolved;
      const shown = redactConfig(effective, deps);
      const format = program.opts<{ output?: OutputFormat }>().output;
      process.stdout.write(format === 'json' ? `${JSON.stringify(shown, null, 2)}\n` : toYaml(shown));
      process.stderr.write(`configuration is valid${file ? ` (${resolve(file)} and environment)` : ' (defaults and environment)'}\n`);
    });
}
