// The admin console in real headless Chromium: sign-in through Postern's login page, every page
// free of console errors, CSP violations and serious accessibility problems (axe-core), a client
// created, its secret shown once, rotated, disabled and deleted; a route rule, a sign-in app's
// redirect URIs and a workload's binding changed through their forms; paged holders of a role; a
// read-only administrator sees no write controls and a forged change is refused; a person
// without the role is refused; logout ends both sessions. Runs once in CI (on Postgres), not on
// both databases.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createClient, getClient } from '../src/services/clients.ts';
import { createRole } from '../src/services/roles.ts';
import { createRoute, getRoute } from '../src/services/routes.ts';
import { createIssuer } from '../src/services/trusted-issuers.ts';
import { createUser } from '../src/services/users.ts';
import { createTestDatabase, slowSuitesRunHere, type TestDatabase } from './support/database.ts';
import { api } from './support/fixtures.ts';
import { ROOT } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium) console.warn(`console browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
// CI runs the suite on Postgres and on the embedded database; the browser half runs once.
const once = slowSuitesRunHere;

const SHOTS = path.join(ROOT, 'test-results', 'console');
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const PASSWORD = 'lantern-meadow-copper-9';

let database: TestDatabase;
let server: TestServer;
let browser: Browser;
let ruleId: string;

interface Watched { page: Page; context: BrowserContext; problems: string[] }

async function open(): Promise<Watched> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const problems: string[] = [];
  page.on('console', (message) => {
    // A page answered with an error status (a refusal the test expects) is logged by Chromium as
    // a failed load; failed loads of anything else are caught below, with their URL.
    if (/^Failed to load resource/.test(message.text())) return;
    if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) problems.push(message.text());
  });
  page.on('response', (response) => {
    if (response.request().resourceType() !== 'document' && response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
  });
  page.on('pageerror', (error) => problems.push(String(error)));
  return { page, context, problems };
}

async function signIn(page: Page, username: string): Promise<void> {
  await page.goto(`${server.url}/console`);
  await page.getByRole('link', { name: 'Sign in' }).click();
  await expect.poll(() => page.title()).toBe('Sign in · Postern');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState('load');
}

/** No serious or critical axe-core violation on the page (run through the debugging protocol, not the page's CSP). */
async function checkPage(watched: Watched, shot?: string): Promise<void> {
  await watched.page.evaluate(AXE);
  const violations = await watched.page.evaluate(async () => {
    const g = globalThis as any;
    const result = await g.axe.run(g.document, { resultTypes: ['violations'] });
    return result.violations.filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
      .map((v: any) => `${v.id}: ${v.help} (${v.nodes.map((n: any) => n.target.join(' ')).join(', ')})`);
  });
  expect(violations, await watched.page.title()).toEqual([]);
  expect(watched.problems, await watched.page.title()).toEqual([]);
  if (shot) await watched.page.screenshot({ path: path.join(SHOTS, `console-${shot}.png`), fullPage: true });
}

describe.skipIf(!hasChromium || !once)('the admin console in a real browser', () => {
  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startServer(database.database, {}, '', process.env.CONSOLE_TEST_LOG ? { logger: (await import('../src/platform/logger.ts')).createLogger('debug') } : {});
    const { db } = database.database;
    await api(db, { identifier: 'https://orders.example', name: 'orders', scopes: ['orders:read', 'orders:write'] });
    await createRole(db, { name: 'console-readers', grants: [{ api: 'urn:postern', scopes: ['admin:read'] }] }, NO_AUDIT);
    await createUser(db, { username: 'ada', password: PASSWORD, name: 'Ada Admin', roles: ['postern-admin'] }, NO_AUDIT);
    await createUser(db, { username: 'rory', password: PASSWORD, name: 'Rory Reader', roles: ['console-readers'] }, NO_AUDIT);
    await createUser(db, { username: 'nina', password: PASSWORD, name: 'Nina Nobody' }, NO_AUDIT);
    ruleId = (await createRoute(db, { api: 'https://orders.example', host: 'orders.example', methods: ['GET'], path: '/orders/{id}', scopesAll: ['orders:read'], rateLimitPerMinute: 600 }, NO_AUDIT)).id;
    await createRoute(db, { api: 'https://orders.example', host: 'orders.example', path: '/health', public: true }, NO_AUDIT);
    // More rules and holders than a page shows.
    for (let i = 0; i < 26; i++) await createRoute(db, { api: 'https://orders.example', host: 'orders.example', path: `/reports/${i}`, scopesAll: ['orders:read'] }, NO_AUDIT);
    await createRole(db, { name: 'orders-readers', grants: [{ api: 'https://orders.example', scopes: ['orders:read'] }] }, NO_AUDIT);
    for (let i = 0; i < 27; i++) await createClient(db, { name: `reader-${String(i).padStart(2, '0')}`, roles: ['orders-readers'] }, NO_AUDIT);
    await createIssuer(db, { name: 'k8s-prod', issuer: 'https://k8s.example', kind: 'kubernetes', jwksUri: 'https://k8s.example/openid/v1/jwks' }, { development: false }, NO_AUDIT);
    await createClient(db, {
      name: 'orders-web', grantTypes: ['authorization_code'], redirectUris: ['https://app.example/callback'], postLogoutRedirectUris: ['https://app.example/'],
    }, NO_AUDIT);
    await createClient(db, {
      name: 'orders-worker', federated: { issuer: 'k8s-prod', subject: 'system:serviceaccount:shop:orders', claims: { 'kubernetes.io/namespace': 'shop' } },
    }, NO_AUDIT);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    fs.mkdirSync(SHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await database?.drop();
  });

  it('signs an administrator in; every page renders cleanly; a client lives and dies; logout ends both sessions', async () => {
    const watched = await open();
    const { page, context } = watched;
    await page.goto(`${server.url}/console`);
    await checkPage(watched, 'sign-in');
    await signIn(page, 'ada');
    await expect.poll(() => page.title()).toBe('Overview · Postern console');
    await checkPage(watched, 'overview');

    for (const [path, title, shot] of [
      ['/apis', 'APIs', 'apis'], ['/roles', 'Roles', 'roles'], ['/clients', 'Clients', 'clients'], ['/clients/new', 'New client', 'client-new'],
      ['/people', 'People', 'people'], ['/keys', 'Signing keys', 'keys'], ['/audit', 'Audit log', 'audit'],
      ['/registration-tokens', 'Registration tokens', 'registration-tokens'], ['/route-policies', 'Route policies', 'route-policies'],
      [`/route-policies?method=GET&url=${encodeURIComponent('https://orders.example/orders/7')}`, 'Route policies', 'route-check'],
      ['/trusted-issuers', 'Trusted issuers', 'trusted-issuers'], ['/clients/orders-web', 'orders-web', 'client-web'],
      ['/clients/orders-worker', 'orders-worker', 'client-workload'], ['/roles/orders-readers', 'orders-readers', 'role-holders'],
    ] as const) {
      await page.goto(`${server.url}/console${path}`);
      expect(await page.title()).toBe(`${title} · Postern console`);
      await checkPage(watched, shot);
    }
    await page.goto(`${server.url}/console/apis`);
    await page.getByRole('link', { name: 'https://orders.example' }).click();
    await checkPage(watched, 'api');
    await page.goto(`${server.url}/console/roles`);
    await page.getByRole('link', { name: 'postern-admin' }).click();
    await checkPage(watched, 'role');
    await page.goto(`${server.url}/console/people`);
    await page.getByRole('link', { name: 'ada' }).click();
    await checkPage(watched, 'person');
    await page.goto(`${server.url}/console/route-policies`);
    await page.getByRole('link', { name: /^route_/ }).first().click();
    expect(await page.title()).toMatch(/^Rule route_/);
    await checkPage(watched, 'route-policy');
    // A rule made through the form: first refused (a scope the API lacks), then made, then deleted by id.
    await page.goto(`${server.url}/console/route-policies`);
    await page.getByLabel('Methods (empty: any)').fill('POST');
    await page.getByLabel('Path pattern').fill('/orders');
    await page.getByLabel('Scopes, all of (space separated)').fill('orders:refund');
    await page.getByRole('button', { name: 'Create rule' }).click();
    await expect.poll(() => page.locator('[role=alert]').first().textContent()).toContain('does not define orders:refund');
    await checkPage(watched);
    await page.getByLabel('Scopes, all of (space separated)').fill('orders:write');
    await page.getByRole('button', { name: 'Create rule' }).click();
    await expect.poll(() => page.title()).toMatch(/^Rule route_/);
    const madeId = (await page.title()).split(' ')[1]!;
    await page.getByLabel(/Type the id/).fill(madeId);
    await page.getByRole('button', { name: 'Delete rule' }).click();
    await expect.poll(() => page.locator('[role=status]').first().textContent()).toContain(`Rule ${madeId} deleted`);
    // A rule changed on its page: refused (a scope the API lacks) with what was typed kept, then saved.
    await page.goto(`${server.url}/console/route-policies/${ruleId}`);
    await page.getByLabel('Methods (empty: any)').fill('GET HEAD');
    await page.getByLabel('Scopes, all of (space separated)').fill('orders:refund');
    await page.getByRole('button', { name: 'Save rule' }).click();
    await expect.poll(() => page.locator('[role=alert]').first().textContent()).toContain('does not define orders:refund');
    expect(await page.getByLabel('Methods (empty: any)').inputValue()).toBe('GET HEAD');
    await checkPage(watched, 'route-policy-refused');
    await page.getByLabel('Scopes, all of (space separated)').fill('orders:read');
    await page.getByRole('button', { name: 'Save rule' }).click();
    await expect.poll(() => page.locator('[role=status]').first().textContent()).toContain(`Rule ${ruleId} saved.`);
    expect((await getRoute(database.database.db, ruleId)).methods).toEqual(['GET', 'HEAD']);
    // The rules a page at a time.
    await page.goto(`${server.url}/console/route-policies`);
    await page.getByRole('link', { name: 'Next page' }).click();
    await expect.poll(() => page.getByRole('link', { name: 'First page' }).count()).toBe(1);
    await checkPage(watched);

    // A sign-in app's redirect URIs: refused under the rules of creation, then saved.
    await page.goto(`${server.url}/console/clients/orders-web`);
    await page.getByLabel(/^Redirect URIs/).fill('http://app.example/callback');
    await page.getByRole('button', { name: 'Save redirect URIs' }).click();
    await expect.poll(() => page.locator('[role=alert]').first().textContent()).toContain('must use https');
    await checkPage(watched);
    await page.getByLabel(/^Redirect URIs/).fill('https://app.example/callback\nhttps://app.example/auth/return');
    await page.getByRole('button', { name: 'Save redirect URIs' }).click();
    await expect.poll(() => page.locator('[role=status]').first().textContent()).toContain('Redirect URIs saved.');
    expect((await getClient(database.database.db, 'orders-web')).redirectUris).toEqual(['https://app.example/callback', 'https://app.example/auth/return']);
    // A workload's binding.
    await page.goto(`${server.url}/console/clients/orders-worker`);
    await page.getByLabel(/^Subject/).fill('system:serviceaccount:shop:orders-v2');
    await page.getByRole('button', { name: 'Save binding' }).click();
    await expect.poll(() => page.locator('[role=status]').first().textContent()).toContain('Binding saved.');
    expect((await getClient(database.database.db, 'orders-worker')).federation!.subject).toBe('system:serviceaccount:shop:orders-v2');
    // The holders of a role a page at a time.
    await page.goto(`${server.url}/console/roles/orders-readers`);
    await page.getByRole('link', { name: 'Next page of clients' }).click();
    await expect.poll(() => page.getByRole('link', { name: 'reader-26' }).count()).toBe(1);
    await checkPage(watched);
    await page.goto(`${server.url}/console/trusted-issuers`);
    await page.getByRole('link', { name: 'k8s-prod' }).click();
    expect(await page.title()).toBe('k8s-prod · Postern console');
    await checkPage(watched, 'trusted-issuer');

    // A client: created, its secret shown once.
    await page.goto(`${server.url}/console/clients/new`);
    await page.getByLabel('Name', { exact: true }).fill('billing-service');
    await page.getByRole('button', { name: 'Create client' }).click();
    await expect.poll(() => page.title()).toBe('Secret of billing-service · Postern console');
    const secret = (await page.locator('#client-secret').textContent())!.trim();
    expect(secret.length).toBeGreaterThan(30);
    expect(page.url()).not.toContain(secret);
    await checkPage(watched, 'client-secret');
    await page.reload();
    expect(await page.content()).not.toContain(secret);
    await page.goto(`${server.url}/console/clients`);
    await page.getByRole('link', { name: 'billing-service' }).click();
    expect(await page.content()).not.toContain(secret);
    await checkPage(watched, 'client');
    const clientUrl = page.url();

    // The secret works, then is rotated: the new one is shown once too.
    const token = async (value: string) => (await fetch(`${server.url}/token`, {
      method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }),
      headers: { authorization: `Basic ${Buffer.from(`${clientUrl.split('/').at(-1)}:${value}`).toString('base64')}` },
    })).status;
    expect(await token(secret)).not.toBe(401);
    await page.getByLabel('Old secret keeps working for').selectOption('0');
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await expect.poll(() => page.title()).toBe('Secret of billing-service · Postern console');
    const rotated = (await page.locator('#client-secret').textContent())!.trim();
    expect(rotated).not.toBe(secret);
    expect(await token(secret)).toBe(401);
    await page.reload();
    expect(await page.content()).not.toContain(rotated);

    // Disabled, then deleted by name.
    await page.goto(clientUrl);
    await page.getByRole('button', { name: 'Disable' }).click();
    await expect.poll(() => page.locator('[role=status]').first().textContent()).toContain('is disabled');
    expect(await token(rotated)).toBe(401);
    await page.getByLabel(/Type the name/).fill('billing-service');
    await page.getByRole('button', { name: 'Delete client' }).click();
    await expect.poll(() => page.locator('[role=status]').first().textContent()).toContain('Client billing-service deleted.');
    expect(await page.getByRole('link', { name: 'billing-service' }).count()).toBe(0);

    // Every change is in the audit log, with the person as actor.
    await server.app.audit.flush();
    await page.goto(`${server.url}/console/audit?type=client.deleted`);
    expect(await page.locator('tbody').textContent()).toContain('client.deleted');
    expect(await page.locator('tbody').textContent()).toContain('user usr_');

    // Every cookie the console set is HttpOnly.
    for (const cookie of await context.cookies(server.url)) expect(cookie.httpOnly, cookie.name).toBe(true);

    // Logout: the console session, then the sign-in session.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.title()).toBe('Sign out · Postern');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.title()).toBe('Signed out · Postern console');
    await checkPage(watched, 'signed-out');
    await page.goto(`${server.url}/console/clients`);
    expect(await page.title()).toBe('Sign in · Postern console');
    await page.getByRole('link', { name: 'Sign in' }).click();
    // No sign-in session left: Postern asks for the password again.
    await expect.poll(() => page.title()).toBe('Sign in · Postern');
    await context.close();
  }, 240_000);

  it('shows a read-only administrator no write controls, and refuses a forged change', async () => {
    const watched = await open();
    const { page, context } = watched;
    await signIn(page, 'rory');
    await expect.poll(() => page.title()).toBe('Overview · Postern console');
    for (const path of ['/clients', '/apis', '/roles', '/people', '/keys', '/registration-tokens', '/route-policies', '/roles/orders-readers',
      `/route-policies/${ruleId}`, '/clients/orders-web', '/clients/orders-worker', '/trusted-issuers']) {
      await page.goto(`${server.url}/console${path}`);
      // The only form that posts is the sign-out.
      expect(await page.locator('form[method=post]').count(), path).toBe(1);
      await checkPage(watched, path === '/clients' ? 'read-only' : undefined);
    }
    expect(await page.getByRole('link', { name: 'New client' }).count()).toBe(0);
    const csrf = await page.locator('input[name=csrf]').first().inputValue();
    const forged = await context.request.post(`${server.url}/console/roles`, { form: { csrf, name: 'forged-role' } });
    expect(forged.status()).toBe(403);
    expect(await forged.text()).toContain('admin:write');
    const roles = await context.request.get(`${server.url}/console/roles`);
    expect(await roles.text()).not.toContain('forged-role');
    // Without the CSRF token, the same request is refused as well.
    expect((await context.request.post(`${server.url}/console/roles`, { form: { name: 'forged-role' } })).status()).toBe(403);
    // The new forms too, with a token of the session.
    const before = await getClient(database.database.db, 'orders-web');
    for (const [path, form] of [
      ['/clients/orders-web/redirect-uris', { redirectUris: 'https://forged.example/cb' }],
      ['/clients/orders-worker/federation', { federatedIssuer: 'k8s-prod', federatedSubject: 'forged' }],
      [`/route-policies/${ruleId}`, { path: '/forged' }],
    ] as const) {
      expect((await context.request.post(`${server.url}/console${path}`, { form: { csrf, ...form } })).status(), path).toBe(403);
    }
    expect((await getClient(database.database.db, 'orders-web')).redirectUris).toEqual(before.redirectUris);
    expect((await getRoute(database.database.db, ruleId)).path).toBe('/orders/{id}');
    await context.close();
  }, 120_000);

  it('refuses a person without the role, and keeps no session for them', async () => {
    const watched = await open();
    const { page, context } = watched;
    await signIn(page, 'nina');
    await expect.poll(() => page.title()).toBe('Not an administrator · Postern console');
    expect(await page.locator('main').textContent()).toContain('has no access to the console');
    await checkPage(watched, 'not-admin');
    expect((await context.cookies(server.url)).map((cookie) => cookie.name)).not.toContain('postern.console');
    const nina = await database.database.db.selectFrom('console_sessions').innerJoin('users', 'users.id', 'console_sessions.user_id')
      .where('users.username', '=', 'nina').selectAll().execute();
    expect(nina).toEqual([]);
    await context.close();
  }, 120_000);
});
