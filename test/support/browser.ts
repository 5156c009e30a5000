import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Browser, type Page, chromium } from 'playwright-core';
import { UI_DIR } from '../../src/http/ui.js';
import { OUTPUT } from './output.js';

export const SCREENSHOTS = join(OUTPUT, 'screenshots');

/** Debian's Chromium; `npx playwright install` cannot download a browser here. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p) : st.mtimeMs);
  }
  return newest;
}

/** Builds the UI bundle when it is missing or older than its sources (`npm run build` normally did it). */
export function ensureUiBuilt(): void {
  const index = join(UI_DIR, 'index.html');
  const sources = Math.max(newestMtime(resolve('ui/src')), statSync(resolve('ui/index.html')).mtimeMs);
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return;
  execFileSync(process.execPath, [resolve('node_modules/vite/bin/vite.js'), 'build', '--config', 'ui/vite.config.ts'], { stdio: 'pipe', timeout: 120_000 });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

const FAILED_LOAD = /^Failed to load resource: the server responded with a status of (\d{3})/;

/**
 * Fails the test on any console error or uncaught page error. The one kind of console error a
 * correct page still produces is Chromium's own note about an HTTP error response; a test
 * declares each one it provokes on purpose (status and path), and any other fails it too.
 */
export class ConsoleWatch {
  private readonly errors: string[] = [];
  private readonly allowed: { status: number; path: RegExp; seen: number }[] = [];

  constructor(page: Page) {
    page.on('pageerror', (err) => this.errors.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && msg.type() !== 'warning') return;
      const text = msg.text();
      const failed = FAILED_LOAD.exec(text);
      if (failed) {
        const path = new URL(msg.location().url || 'http://x/').pathname;
        const allow = this.allowed.find((a) => a.status === Number(failed[1]) && a.path.test(path));
        if (allow) {
          allow.seen++;
          return;
        }
        this.errors.push(`unexpected HTTP ${failed[1]} for ${path}`);
        return;
      }
      // Warnings count too, except Chromium's notes about its own headless setup.
      if (msg.type() === 'warning' && /GPU|WebGL|SwiftShader/i.test(text)) return;
      this.errors.push(`console ${msg.type()}: ${text}`);
    });
  }

  /** The next HTTP error the page provokes on purpose. */
  expectHttpError(status: number, path: RegExp): void {
    this.allowed.push({ status, path, seen: 0 });
  }

  /** Throws when anything unexpected was logged, or an announced HTTP error never happened. */
  check(): void {
    const missing = this.allowed.filter((a) => a.seen === 0).map((a) => `expected HTTP ${a.status} for ${a.path} did not happen`);
    const problems = [...this.errors, ...missing];
    this.errors.length = 0;
    this.allowed.length = 0;
    if (problems.length) throw new Error(`the page logged problems:\n${problems.join('\n')}`);
  }
}
