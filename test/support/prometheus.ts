import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { LOG_DIR } from './output.js';
import { freePort } from './ports.js';
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
