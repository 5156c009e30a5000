import { execFile } from 'node:child_process';

export interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** Filled in by the caller: CPU time the serving processes spent per request. */
  cpuUsPerReq?: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`cannot read wrk latency "${text}"`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** One wrk run on loopback; parses requests/s and the latency percentiles of `--latency`. */
export function wrk(url: string, options: { seconds: number; connections: number; threads: number; header?: string; script?: string; env?: NodeJS.ProcessEnv }): Promise<WrkResult> {
  const args = ['-t', String(options.threads), '-c', String(options.connections), '-d', `${options.seconds}s`, '--latency', '--timeout', '5s'];
  if (options.header) args.push('-H', options.header);
  if (options.script) args.push('-s', options.script);
  args.push(url);
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { env: { ...process.env, ...options.env }, timeout: (options.seconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk failed: ${err.message}\n${stderr}`));
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
      const p50 = /\s50%\s+(\S+)/.exec(stdout)?.[1];
      const p99 = /\s99%\s+(\S+)/.exec(stdout)?.[1];
      if (!rps || !p50 || !p99) return reject(new Error(`cannot read wrk output:\n${stdout}`));
      const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
      const errors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
      resolve({ rps, p50ms: ms(p50), p99ms: ms(p99), requests, non2xx, errors });
    });
  });
}
