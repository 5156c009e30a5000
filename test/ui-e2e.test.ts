import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_PATTERN } from '../src/token/format.js';
import { ConsoleWatch, ensureUiBuilt, launchChromium, screenshot } from './support/browser.js';
import { rememberSecret, tempDir } from './support/output.js';
import { type TestServer, callApi, mintFor, startTestServer } from './support/server.js';

/**
 * The web UI end to end: real Chromium, a real tokenwarden on a real SQLite file, and the
 * public API as the judge of what the page claims.
 */
let s: TestServer;
let browser: Browser;
let context: BrowserContext | undefined;
let page: Page;
let currentWatch: ConsoleWatch | undefined;
let bindingDir: string;

beforeAll(async () => {
  ensureUiBuilt();
  bindingDir = tempDir('ui-binding');
  s = await startTestServer({ config: { verify: { failureLimit: 1000 }, delivery: { fileRoots: [bindingDir] } } });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await s?.close();
});

async function openPage(): Promise<ConsoleWatch> {
  context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.url });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  currentWatch = new ConsoleWatch(page);
  await page.goto(`${s.url}/ui/`);
  return currentWatch;
}

async function signIn(token: string): Promise<void> {
  await page.getByLabel('Your tokenwarden token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();
}

afterEach(async () => {
  try {
    currentWatch?.check();
  } finally {
    await context?.close();
    currentWatch = undefined;
    context = undefined;
  }
});

describe('web UI', () => {
  it('is served by tokenwarden itself with a strict content security policy', async () => {
    const root = await fetch(`${s.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/ui/');
    const index = await fetch(`${s.url}/ui/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toContain('text/html');
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(index.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${s.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toContain('javascript');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${s.url}/ui/..%2f..%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${s.url}/ui/assets/nope.js`)).status).toBe(404);
    // the token lifetime policy the create form offers
    const policy = await s.api('GET', '/api/v1/policy');
    expect(policy.body.tokens.maxLifetime).toEqual({ seconds: 365 * 86400, text: '365d' });
  });

  it('signs in, mints a token shown once with a copy button, lists it without the secret, and revokes it', async () => {
    const watch = await openPage();
    await screenshot(page, '01-sign-in');
    watch.expectHttpError(401, /^\/api\/v1\/whoami$/);
    await page.getByLabel('Your tokenwarden token').fill('twd_not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('#signin-token-error').textContent()).toContain('malformed');
    await signIn(s.adminToken);
    expect(await page.getByTestId('whoami').textContent()).toBe('admin');
    expect(await page.evaluate('[localStorage.length, sessionStorage.length, document.cookie]')).toEqual([0, 0, '']);

    await page.getByRole('button', { name: 'Create token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a token' });
    await dialog.getByLabel('Name').fill('ui-scrape');
    await dialog.getByRole('checkbox', { name: 'metrics.read' }).check();
    await dialog.getByLabel('Expires after').selectOption('30d');
    await screenshot(page, '02-create-token');
    await dialog.getByRole('button', { name: 'Create token' }).click();

    const once = page.getByRole('alertdialog', { name: 'Copy your new token now' });
    await once.waitFor();
    expect(await once.textContent()).toContain('This is the only time this token is shown');
    const secret = rememberSecret((await page.locator('#new-token').textContent())!.trim());
    expect(secret).toMatch(new RegExp(`^${TOKEN_PATTERN.source}$`));
    await once.getByRole('button', { name: 'Copy token' }).click();
    await expect.poll(() => once.getByRole('status').textContent()).toContain('Copied');
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(secret);
    expect(await page.content()).toContain(secret); // the check below can fail
    await screenshot(page, '03-token-shown-once');

    // the API accepts what the page showed, with exactly the scope picked
    const who = await callApi(s.url, 'GET', '/api/v1/whoami', undefined, secret);
    expect(who.status).toBe(200);
    expect(who.body).toMatchObject({ actor: 'admin', scopes: ['metrics.read'] });
    const tokenId = who.body.tokenId as string;
    await s.tw.ctx.verifier.lastUse.flush();

    await once.getByRole('button', { name: 'I have stored it, close' }).click();
    await once.waitFor({ state: 'detached' });
    const row = page.locator(`tr[data-token-id="${tokenId}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('ui-scrape');
    expect(await page.content()).not.toContain(secret);
    expect(await page.content()).not.toContain(secret.slice(17));

    // last use: time, address and client of the call above
    await page.getByLabel('Search').fill('ui-scrape');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    await page.getByLabel('Search').fill('');
    const soon = await mintFor(s, 'bot-ui-soon', ['metrics.read'], { expiresIn: '3d' });
    await page.getByLabel('State').selectOption({ label: 'Any state' });
    await page.getByLabel('State').selectOption('active');
    await page.locator(`tr[data-token-id="${soon.id}"] td.expiring`).waitFor();
    await expect.poll(() => row.textContent()).toMatch(/127\.0\.0\.1/);
    await screenshot(page, '04-tokens');

    await row.getByRole('button', { name: /^Revoke token ui-scrape/ }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Revoke token “ui-scrape”?' });
    await confirm.getByLabel(/Reason/).fill('end-to-end test');
    await screenshot(page, '05-revoke-confirm');
    await confirm.getByRole('button', { name: 'Revoke token' }).click();
    await row.waitFor({ state: 'detached' });

    const after = await callApi(s.url, 'GET', '/api/v1/whoami', undefined, secret);
    expect(after.status).toBe(401);
    const shown = await s.api('GET', `/api/v1/tokens/${tokenId}`);
    expect(shown.body).toMatchObject({ state: 'revoked', revokeReason: 'end-to-end test', revokedBy: 'admin' });
    await page.getByLabel('State').selectOption('revoked');
    await page.locator(`tr[data-token-id="${tokenId}"]`).getByText('revoked', { exact: true }).waitFor();
  });

  it('replaces a token: the successor is shown once and works, the old one is refused', async () => {
    const old = await mintFor(s, 'bot-ui-replace', ['metrics.read']);
    await openPage();
    await signIn(s.adminToken);
    await page.locator(`tr[data-token-id="${old.id}"]`).getByRole('button', { name: /^Replace token/ }).click();
    const dialog = page.getByRole('dialog', { name: /^Replace token/ });
    await dialog.getByLabel('The old token').selectOption('0');
    await dialog.getByRole('button', { name: 'Mint successor' }).click();
    const once = page.getByRole('alertdialog', { name: 'Copy the successor token now' });
    await once.waitFor();
    const successor = rememberSecret((await page.locator('#new-token').textContent())!.trim());
    expect((await callApi(s.url, 'GET', '/api/v1/whoami', undefined, successor)).body.actor).toBe('bot-ui-replace');
    expect((await callApi(s.url, 'GET', '/api/v1/whoami', undefined, old.token)).status).toBe(401);
    await page.keyboard.press('Escape'); // Escape closes it like the button, and the secret goes with it
    await once.waitFor({ state: 'detached' });
    expect(await page.content()).not.toContain(successor);
  });

  it('shows field errors for bad input, from the form and from the server', async () => {
    const watch = await openPage();
    await signIn(s.adminToken);

    // token form: nothing filled, then a lifetime beyond the policy
    await page.getByRole('button', { name: 'Create token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a token' });
    await dialog.getByLabel('Expires after').selectOption('custom');
    await dialog.getByLabel('Custom lifetime').fill('400d');
    await dialog.getByRole('button', { name: 'Create token' }).click();
    await expect.poll(() => page.locator('#tok-name-error').textContent()).toContain('Give the token a name');
    expect(await page.locator('#tok-scopes-error').textContent()).toContain('at least one scope');
    expect(await page.locator('#tok-custom-error').textContent()).toContain('at most 365d');
    expect(await page.locator('#tok-custom').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#tok-custom').getAttribute('aria-describedby')).toContain('tok-custom-error');
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('tok-name');
    await screenshot(page, '06-token-form-errors');

    // the server's problem JSON names the field; the form puts it under that field
    await s.api('POST', '/api/v1/tokens', { name: 'taken-name', scopes: ['metrics.read'], expiresIn: '1d' });
    await dialog.getByLabel('Name').fill('taken-name');
    await dialog.getByRole('checkbox', { name: 'metrics.read' }).check();
    await dialog.getByLabel('Custom lifetime').fill('2d');
    watch.expectHttpError(409, /^\/api\/v1\/tokens$/);
    await dialog.getByRole('button', { name: 'Create token' }).click();
    await expect.poll(() => page.locator('#tok-name-error').textContent()).toContain('already has a live token named "taken-name"');
    expect(await page.locator('#tok-custom-error').count()).toBe(0);
    await dialog.getByRole('button', { name: 'Cancel' }).click();

    // identity form: the bot- rule, in the form and checked before sending
    await page.getByRole('link', { name: 'Identities and roles' }).click();
    await page.getByRole('button', { name: 'Create identity' }).click();
    const idDialog = page.getByRole('dialog', { name: 'Create an identity' });
    expect(await idDialog.textContent()).toContain('Service identity names start with bot-');
    await idDialog.getByLabel('Name').fill('prometheus');
    await idDialog.getByRole('button', { name: 'Create identity' }).click();
    await expect.poll(() => page.locator('#id-name-error').textContent()).toContain('must start with "bot-", e.g. "bot-prometheus"');
    await screenshot(page, '07-identity-form-errors');
    expect((await s.api('GET', '/api/v1/actors/prometheus')).status).toBe(404);

    await idDialog.getByLabel('Name').fill('bot-ui-prom');
    await idDialog.getByRole('checkbox', { name: 'metrics-read' }).check();
    await idDialog.getByRole('button', { name: 'Create identity' }).click();
    const actorRow = page.locator('tr[data-actor="bot-ui-prom"]');
    await actorRow.waitFor();
    expect(await actorRow.textContent()).toContain('metrics.read');
    expect((await s.api('GET', '/api/v1/actors/bot-ui-prom')).body).toMatchObject({ kind: 'service', roles: ['metrics-read'] });

    // the same name again: the server's 409 lands on the name field
    await page.getByRole('button', { name: 'Create identity' }).click();
    await idDialog.getByLabel('Name').fill('bot-ui-prom');
    watch.expectHttpError(409, /^\/api\/v1\/actors$/);
    await idDialog.getByRole('button', { name: 'Create identity' }).click();
    await expect.poll(() => page.locator('#id-name-error').textContent()).toContain('already exists');
    await idDialog.getByRole('button', { name: 'Cancel' }).click();

    // assign a role
    await actorRow.getByRole('button', { name: 'Assign roles to bot-ui-prom' }).click();
    const roles = page.getByRole('dialog', { name: 'Roles of bot-ui-prom' });
    await roles.getByRole('checkbox', { name: 'auditor' }).check();
    await roles.getByRole('button', { name: 'Save roles' }).click();
    await expect.poll(() => actorRow.textContent()).toContain('audit.read');
    expect((await s.api('GET', '/api/v1/actors/bot-ui-prom')).body.roles).toEqual(['auditor', 'metrics-read']);
    await screenshot(page, '08-identities');
  });

  it('offers only the scopes the signed-in identity may grant, and highlights tokens that expire soon', async () => {
    const scraper = await mintFor(s, 'bot-ui-scraper', ['metrics.read']);
    const soon = await mintFor(s, 'bot-ui-scraper', ['metrics.read'], { expiresIn: '2d' });
    await openPage();
    await signIn(scraper.token);
    await page.getByRole('button', { name: 'Create token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a token' });
    await dialog.getByRole('checkbox', { name: 'metrics.read' }).waitFor();
    expect(await dialog.getByRole('checkbox').count()).toBe(1);
    expect(await dialog.getByLabel('Identity').count()).toBe(0); // no admin:token, no choice of identity
    await dialog.getByRole('button', { name: 'Cancel' }).click();

    const cell = page.locator(`tr[data-token-id="${soon.id}"] td.expiring`);
    expect(await cell.textContent()).toMatch(/in 2 days.*expires soon/);
    expect(await page.locator(`tr[data-token-id="${scraper.id}"] td.expiring`).count()).toBe(0);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByText('needs the scope audit.read').waitFor();
    expect(await page.getByText('needs the scope audit.read').count()).toBe(1);
  });

  it('filters the audit log by action and actor', async () => {
    await openPage();
    await signIn(s.adminToken);
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.locator('table.audit tbody tr').first().waitFor();
    await page.getByLabel('Action').fill('token.revoke');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => page.locator('table.audit tbody tr').count()).toBeGreaterThan(0);
    const actions = await page.locator('table.audit tbody th').allTextContents();
    expect(new Set(actions)).toEqual(new Set(['token.revoke']));
    expect(await page.locator('table.audit').textContent()).toContain('end-to-end test');
    await screenshot(page, '09-audit');

    await page.getByLabel('Action').fill('');
    await page.getByLabel('Actor').fill('nobody-at-all');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('No audit entries match these filters.').waitFor();

    // a time window in the future holds nothing; an inverted one is refused at the field
    await page.getByLabel('Actor').fill('');
    await page.getByLabel('From').fill('2099-01-02T00:00');
    await page.getByLabel('Until').fill('2099-01-01T00:00');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => page.locator('#audit-until-error').textContent()).toContain('before');
  });

  it('shows bindings with state, sinks and next rotation, rotates one on request, and shows its rotation history', async () => {
    const sinkPath = join(bindingDir, 'token');
    await s.api('POST', '/api/v1/actors', { name: 'bot-ui-bound', kind: 'service', roles: ['metrics-read'] });
    const created = await s.api('POST', '/api/v1/bindings', {
      name: 'ui-prometheus',
      actor: 'bot-ui-bound',
      scopes: ['metrics.read'],
      lifetime: '30d',
      sinks: [{ kind: 'file', path: sinkPath }],
      rotation: { confirm: 'none', grace: '0s' },
    });
    expect(created.status).toBe(201);
    await openPage();
    await signIn(s.adminToken);
    await page.getByRole('link', { name: 'Bindings' }).click();
    await page.getByRole('heading', { name: 'Bindings', level: 1 }).waitFor();
    const row = page.locator('tr[data-binding="ui-prometheus"]');
    await row.waitFor();
    expect(await row.textContent()).toContain(sinkPath);
    expect(await row.textContent()).toContain('bot-ui-bound');
    await screenshot(page, '10-bindings');
    const before = (await s.api('GET', '/api/v1/bindings/ui-prometheus')).body;
    await row.getByRole('button', { name: 'Rotate binding ui-prometheus now' }).click();
    await page.getByRole('dialog', { name: 'Rotate “ui-prometheus” now?' }).getByRole('button', { name: 'Rotate now' }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    let after = before;
    await expect
      .poll(async () => {
        after = (await s.api('GET', '/api/v1/bindings/ui-prometheus')).body;
        return after.inFlight === null && after.tokenId !== before.tokenId;
      })
      .toBe(true);

    // The history dialog lists both rotations, newest first, with the token ids they swapped.
    await row.getByRole('button', { name: 'Rotation history of binding ui-prometheus' }).click();
    const dialog = page.getByRole('dialog', { name: 'Rotations of “ui-prometheus”' });
    const table = dialog.getByTestId('rotation-history');
    await table.waitFor();
    const rows = table.locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    const newest = (await rows.nth(0).textContent())!;
    expect(newest).toContain('manual');
    expect(newest).toContain('done');
    expect(newest).toContain(before.tokenId);
    expect(newest).toContain(after.tokenId);
    expect(await rows.nth(1).textContent()).toContain('initial');
    await screenshot(page, '11-binding-history');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
  });

  it('works from the keyboard: dialogs open, trap and give focus back', async () => {
    await openPage();
    await signIn(s.adminToken);
    const create = page.getByRole('button', { name: 'Create token' });
    await create.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Create a token' });
    await dialog.waitFor();
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('tok-name');
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      expect(await page.evaluate("!!document.activeElement?.closest('dialog') || document.activeElement === document.body")).toBe(true);
    }
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Create token');
    // the navigation is reachable and marks the current page
    await page.getByRole('link', { name: 'Audit log' }).focus();
    await page.keyboard.press('Enter');
    // The link itself reads "Audit log" too: wait for the page's heading to take the focus.
    await expect.poll(() => page.evaluate("document.activeElement?.tagName + ' ' + document.activeElement?.textContent")).toBe('H1 Audit log');
    expect(await page.getByRole('link', { name: 'Audit log' }).getAttribute('aria-current')).toBe('page');
  });

  it('signs out when the token it holds is revoked meanwhile', async () => {
    const own = await mintFor(s, 'bot-ui-lost', ['metrics.read']);
    const watch = await openPage();
    await signIn(own.token);
    // The page's first list request must be answered before the revoke, or that request is
    // the one refused and the sign-out comes before the filter change this test makes.
    await page.locator(`tr[data-token-id="${own.id}"]`).waitFor();
    await s.api('DELETE', `/api/v1/tokens/${own.id}`);
    watch.expectHttpError(401, /^\/api\/v1\/tokens$/);
    await page.getByLabel('State').selectOption('expired');
    await page.getByText(/You were signed out/).waitFor();
    expect(await page.getByLabel('Your tokenwarden token').inputValue()).toBe('');
  });
});
