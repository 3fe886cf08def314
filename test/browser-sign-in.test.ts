// End to end in real headless Chromium: a small web app on loopback sends the browser to Postern,
// a person logs in and consents, the app exchanges the code (PKCE), calls userinfo, refreshes,
// and the person logs out. Skipped, and said so, where Chromium is not installed.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../src/services/clients.ts';
import { createUser } from '../src/services/users.ts';
import { pkce } from './support/browser.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, unique } from './support/fixtures.ts';
import { ROOT } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium) console.warn(`browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);

/** Where the pages are photographed (docs/images holds the copies shown in docs/users.md). */
const SHOTS = path.join(ROOT, 'test-results');
const PASSWORD = 'lantern-meadow-copper-9';

let database: TestDatabase;
let server: TestServer;
let appServer: http.Server;
let appUrl: string;
let browser: Browser;
let world: { username: string; clientId: string; clientSecret: string; apiIdentifier: string; role: string };
/** What the app learned, per state. */
const sessions = new Map<string, { verifier: string; result?: Record<string, any> }>();

async function tokenRequest(form: Record<string, string>) {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${world.clientId}:${world.clientSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: await response.json() as Record<string, any> };
}

/** The relying party: /login starts the flow, /cb finishes it, /bye is where logout returns. */
async function appHandler(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url!, appUrl);
  if (url.pathname === '/login') {
    const { verifier, challenge } = pkce();
    const state = unique('state');
    sessions.set(state, { verifier });
    const auth = new URL(`${server.url}/auth`);
    for (const [key, value] of Object.entries({
      client_id: world.clientId, response_type: 'code', redirect_uri: `${appUrl}/cb`, state,
      // OpenID Connect Core §11: offline_access (a refresh token) is honoured with prompt=consent.
      scope: 'openid profile email roles offline_access orders:read', resource: world.apiIdentifier, prompt: 'consent',
      code_challenge: challenge, code_challenge_method: 'S256',
    })) auth.searchParams.set(key, value);
    res.writeHead(302, { location: auth.href }).end();
    return;
  }
  if (url.pathname === '/cb') {
    const session = sessions.get(url.searchParams.get('state') ?? '');
    const code = url.searchParams.get('code');
    if (!session || !code) {
      res.writeHead(400).end(`error: ${url.searchParams.get('error')}`);
      return;
    }
    const tokens = await tokenRequest({ grant_type: 'authorization_code', code, code_verifier: session.verifier, redirect_uri: `${appUrl}/cb` });
    const userinfo = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${tokens.body.access_token}` } });
    const refreshed = await tokenRequest({ grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token, resource: world.apiIdentifier });
    session.result = { tokens, userinfo: await userinfo.json(), refreshed };
    const logout = new URL(`${server.url}/session/end`);
    logout.searchParams.set('id_token_hint', tokens.body.id_token);
    logout.searchParams.set('post_logout_redirect_uri', `${appUrl}/bye`);
    res.writeHead(200, { 'content-type': 'text/html' })
      .end(`<!doctype html><title>App</title><p id="who">Hello ${session.result.userinfo.preferred_username}</p><a id="logout" href="${logout.href}">Log out</a>`);
    return;
  }
  if (url.pathname === '/bye') {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Bye</title><p id="bye">Logged out</p>');
    return;
  }
  res.writeHead(404).end();
}

describe.skipIf(!hasChromium)('sign-in in a real browser', () => {
  beforeAll(async () => {
    appServer = http.createServer((req, res) => {
      appHandler(req, res).catch((error: unknown) => res.writeHead(500).end(String(error)));
    });
    await new Promise<void>((resolve) => appServer.listen(0, '127.0.0.1', resolve));
    appUrl = `http://127.0.0.1:${(appServer.address() as AddressInfo).port}`;

    database = await createTestDatabase();
    server = await startServer(database.database);
    const { db } = database.database;
    // Plain names: this file has a database of its own, and the screenshots show them.
    const orders = await api(db, { identifier: 'https://orders.example', name: 'orders', scopes: ['orders:read', 'orders:write'] });
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const username = 'alice';
    await createUser(db, { username, password: PASSWORD, email: `${username}@example.com`, name: 'Alice Example', roles: [reader.name] }, NO_AUDIT);
    const created = await createClient(db, {
      name: 'orders-web', grantTypes: ['authorization_code'],
      redirectUris: [`${appUrl}/cb`], postLogoutRedirectUris: [`${appUrl}/bye`],
    }, NO_AUDIT);
    world = { username, clientId: created.client.clientId, clientSecret: created.clientSecret!, apiIdentifier: orders.identifier, role: reader.name };

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
    await new Promise((resolve) => appServer?.close(resolve));
  });

  it('logs in, consents, gets tokens, refreshes, and logs out', async () => {
    const context = await browser.newContext({ viewport: { width: 720, height: 640 } });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const violations: string[] = [];
    page.on('console', (message) => { if (/Content Security Policy/i.test(message.text())) violations.push(message.text()); });

    await page.goto(`${appUrl}/login`);
    await expect.poll(() => page.title(), { timeout: 30_000 }).toBe('Sign in · Postern');
    await page.screenshot({ path: path.join(SHOTS, 'login.png') });

    await page.getByLabel('Username').fill(world.username);
    await page.getByLabel('Password').fill('a wrong password here');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('[role=alert]').textContent(), { timeout: 30_000 }).toContain('Wrong username or password.');

    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.title(), { timeout: 30_000 }).toBe('Allow access · Postern');
    const consent = await page.locator('main').textContent();
    expect(consent).toContain('See your email address');
    expect(consent).toContain('orders:read');
    await page.screenshot({ path: path.join(SHOTS, 'consent.png') });

    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL(`${appUrl}/cb?**`);
    expect(await page.locator('#who').textContent()).toBe(`Hello ${world.username}`);

    const session = [...sessions.values()].find((s) => s.result)!;
    expect(session.result!.tokens.status).toBe(200);
    expect(session.result!.tokens.body.id_token).toBeTypeOf('string');
    expect(session.result!.userinfo).toMatchObject({ preferred_username: world.username, roles: [world.role] });
    expect(session.result!.refreshed.status).toBe(200);
    expect(session.result!.refreshed.body.refresh_token).not.toBe(session.result!.tokens.body.refresh_token);

    await page.click('#logout');
    await expect.poll(() => page.title(), { timeout: 30_000 }).toBe('Sign out · Postern');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${appUrl}/bye**`);
    expect(await page.locator('#bye').textContent()).toBe('Logged out');

    // Every cookie Postern set is HttpOnly; nothing broke the Content-Security-Policy.
    const cookies = await context.cookies(server.url);
    for (const cookie of cookies) expect(cookie.httpOnly, cookie.name).toBe(true);
    expect(violations).toEqual([]);
    await context.close();
  }, 120_000);
});
