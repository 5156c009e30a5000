import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN } from './cli.js';
import { LOG_DIR } from './output.js';
import { waitFor } from './wait.js';

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  stdoutFile: string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `tokenwarden serve` as its own process, logging to test-output/logs. */
export function spawnServe(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  return spawnListening('serve', args, env, /listening on (http\S+)/);
}

/** Starts `tokenwarden gate` as its own process (flags as a user gives them), logging to test-output/logs. */
export function spawnGate(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  return spawnListening('gate', args, env, /listening on (http\S+),/);
}

/** A CLI command that runs until stopped; resolves with the URL from its "listening on" line. */
async function spawnListening(command: string, args: string[], env: Record<string, string>, listening: RegExp): Promise<ServeProcess> {
  const stdoutFile = join(LOG_DIR, `${command}-${process.pid}-${Date.now()}.log`);
  const out = createWriteStream(stdoutFile);
  const child = spawn(process.execPath, [BIN, command, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const url = await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`${command} exited with ${child.exitCode}: ${readFileSync(stdoutFile, 'utf8')}`);
    if (!existsSync(stdoutFile)) return undefined;
    return listening.exec(readFileSync(stdoutFile, 'utf8'))?.[1];
  }, `tokenwarden ${command} to listen`);
  return {
    child,
    url,
    stdoutFile,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      }),
  };
}

/** SIGTERM, then SIGKILL if the child has not exited 5 s later; resolves once it is gone. */
export function stopChild(child: ChildProcess | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}
