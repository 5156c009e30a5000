import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { waitFor } from './wait.js';

/** Fills a shipped template's @NAME@ placeholders; refuses to leave any unfilled. */
export function renderShipped(path: string, values: Record<string, string | number>): string {
  let text = readFileSync(resolve(path), 'utf8');
  for (const [k, v] of Object.entries(values)) text = text.split(`@${k}@`).join(String(v));
  const left = /@[A-Z_]+@/.exec(text.replace(/^\s*#.*$/gm, ''));
  if (left) throw new Error(`${path}: placeholder ${left[0]} was not filled`);
  return text;
}

export interface Nginx {
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Runs the Debian nginx in the foreground under `dir` with `httpBody` as the http {} content.
 * Only the harness (temp paths, pid, logs, user) is written here; the server blocks come from the caller.
 */
export async function startNginx(dir: string, httpBody: string, logs: { errorLog: string; accessLog: string | 'off' }, ports: number[], workers = 1): Promise<Nginx> {
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'temp', d), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      // As root, workers would otherwise run as nobody and not read the test's 0700 temp dirs.
      process.getuid?.() === 0 ? 'user root;' : '',
      `worker_processes ${workers};`,
      'events { worker_connections 4096; }',
      'http {',
      `  access_log ${logs.accessLog};`,
      '  default_type text/plain;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((d) => `  ${d}_temp_path ${join(dir, 'temp', d)};`),
      httpBody,
      '}',
    ].join('\n'),
  );
  const err = openSync(logs.errorLog, 'a');
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-e', logs.errorLog, '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${logs.errorLog} info;`], {
    stdio: ['ignore', err, err],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (const port of ports) {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${readFileSync(logs.errorLog, 'utf8').slice(-2000)}`);
      return new Promise<boolean>((res) => {
        const req = request({ host: '127.0.0.1', port, path: '/', method: 'HEAD' }, (r) => {
          r.resume();
          res(true);
        });
        req.on('error', () => res(false));
        req.end();
      });
    }, `nginx on port ${port}`, 15_000);
  }
  return {
    child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGQUIT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    },
  };
}
