import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { LOG_DIR } from './output.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';
import { stopChild } from './process.js';

export interface PrometheusProcess {
  child: ChildProcess;
  url: string;
  /** GET an HTTP API path (e.g. `/api/v1/targets`); its `data`, or throws unless the status is success. */
  query(path: string): Promise<any>;
  /** An instant query's result vector. */
  instant(expr: string): Promise<any[]>;
  stop(): Promise<void>;
}

/**
 * Runs the installed Prometheus on a free 127.0.0.1 port with `config` (YAML text, or an object
 * written as YAML) and its TSDB under `dir`; its output goes to LOG_DIR/<logName>-<pid>.log for the leak check.
 * Not waited for: callers wait for the first scrape they care about.
 */
export async function startPrometheus(options: { dir: string; config: string | object; logName: string }): Promise<PrometheusProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const configFile = join(options.dir, 'prometheus.yml');
  writeFileSync(configFile, typeof options.config === 'string' ? options.config : stringify(options.config));
  const log = createWriteStream(join(LOG_DIR, `${options.logName}-${process.pid}.log`));
  const child = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${join(options.dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const query = async (path: string): Promise<any> => {
    const body = (await (await fetch(`${url}${path}`)).json()) as { status: string; data: any };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${JSON.stringify(body)}`);
    return body.data;
  };
  return {
    child,
    url,
    query,
    instant: async (expr) => (await query(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    stop: () => stopChild(child),
  };
}

export interface BearerScrapeJob {
  job: string;
  /** host:port */
  target: string;
  /** The file Prometheus re-reads its bearer token from (a tokenwarden file sink). */
  credentialsFile: string;
  metricsPath?: string;
}

/** A Prometheus configuration scraping each job every second with `authorization.credentials_file`. */
export function everySecondConfig(jobs: BearerScrapeJob[]): string {
  return [
    'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1m }',
    'scrape_configs:',
    ...jobs.flatMap((j) => [
      `  - job_name: ${j.job}`,
      `    metrics_path: ${j.metricsPath ?? '/metrics'}`,
      `    authorization: { type: Bearer, credentials_file: ${j.credentialsFile} }`,
      `    static_configs: [{ targets: ["${j.target}"] }]`,
    ]),
    '',
  ].join('\n');
}

/** Waits for the job's first successful scrape; resolves with its time (epoch seconds). */
export async function firstGoodScrape(prometheus: PrometheusProcess, job: string, timeoutMs = 30_000): Promise<number> {
  const expr = `up{job="${job}"}`;
  await waitFor(async () => (await prometheus.instant(expr)).some((r: any) => r.value[1] === '1'), `the first good scrape of ${job}`, timeoutMs, 250);
  return Date.now() / 1000;
}

/** Every scrape of the job between start and end (epoch seconds) as Prometheus recorded it: [time, up] raw samples. */
export async function upSamples(prometheus: PrometheusProcess, job: string, start: number, end: number): Promise<[number, string][]> {
  const expr = encodeURIComponent(`up{job="${job}"}[${Math.ceil(end - start)}s]`);
  const result = await prometheus.query(`/api/v1/query?query=${expr}&time=${end}`);
  return result.result[0]?.values ?? [];
}
