// The admin console over plain HTTP, on both databases: its headers, what it stores (nothing
// before sign-in; a hash of the session id after), the checks of the sign-in's return, idle
// expiry, and refusals of changes without a session or a CSRF token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { startConsoleSession, resumeConsoleSession, CONSOLE_CLIENT_ID } from '../src/services/console-sessions.ts';
import { unassignRoleFromUser } from '../src/services/roles.ts';
import { createUser } from '../src/services/users.ts';
import { ArtifactKey } from '../src/domain/artifact-hashing.ts';
import { HttpBrowser } from './support/browser.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import http from 'node:http';
import { freePort } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';

const PASSWORD = 'lantern-meadow-copper-9';
let database: TestDatabase;
let server: TestServer;

const countSessions = async () => Number((await database.database.db.selectFrom('console_sessions')
  .select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

/** Signs `username` in through the login page, as a browser without scripts would. */
async function signIn(browser: HttpBrowser, username: string, consoleUrl = server.url) {
  const start = await browser.request(`${consoleUrl}/console/login`);
  expect(start.status).toBe(303);
  let page = await browser.request(start.location!);
  while (page.location) page = await browser.request(new URL(page.location, server.url).href);
  const action = /action="([^"]+)"/.exec(page.html)![1]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.html)![1]!;
  page = await browser.request(new URL(action, server.url).href, { form: { csrf, username, password: PASSWORD } });
  while (page.location) page = await browser.request(new URL(page.location, consoleUrl).href);
  return page;
}

describe('the admin console over HTTP', () => {
  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startServer(database.database);
    const { db } = database.database;
    await createUser(db, { username: 'ada', password: PASSWORD, roles: ['postern-admin'] }, NO_AUDIT);
    await createUser(db, { username: 'nina', password: PASSWORD }, NO_AUDIT);
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  it('sends a strict CSP and no caching, and stores nothing for a browser that has not signed in', async () => {
    const browser = new HttpBrowser();
    const page = await browser.request(`${server.url}/console`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.html).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(page.html).not.toMatch(/\sstyle=/);
    // Starting a sign-in, and coming back with made-up values, write no row.
    const start = await browser.request(`${server.url}/console/login`);
    expect(start.location).toContain(`client_id=${CONSOLE_CLIENT_ID}`);
    expect(start.location).toContain('code_challenge_method=S256');
    for (let i = 0; i < 5; i++) {
      const back = await browser.request(`${server.url}/console/callback?code=made-up-${i}&state=guess-${i}`);
      expect(back.status).toBe(400);
      expect(back.html).toContain('did not complete');
    }
    const cookieless = await new HttpBrowser().request(`${server.url}/console/callback?code=x&state=y`);
    expect(cookieless.status).toBe(400);
    expect(await countSessions()).toBe(0);
    // Pages past sign-in send the browser to sign in; changes are refused.
    expect((await new HttpBrowser().request(`${server.url}/console/clients`)).status).toBe(401);
    expect((await new HttpBrowser().request(`${server.url}/console/roles`, { form: { name: 'x' } })).status).toBe(401);
    expect((await new HttpBrowser().request(`${server.url}/console/nothing-here`)).status).toBe(404);
  });

  it('keeps a hash of the session id, refuses a change without the CSRF token, and ends the session when idle', async () => {
    const browser = new HttpBrowser();
    const overview = await signIn(browser, 'ada');
    expect(overview.status).toBe(200);
    expect(overview.html).toContain('<title>Overview · Postern console</title>');
    const cookie = browser.cookies.get('postern.console')!;
    const rows = await database.database.db.selectFrom('console_sessions').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id_hash).not.toContain(cookie);
    expect(JSON.stringify(rows)).not.toContain(cookie);
    const noToken = await browser.request(`${server.url}/console/roles`, { form: { name: 'no-token-role' } });
    expect(noToken.status).toBe(403);
    const wrongToken = await browser.request(`${server.url}/console/roles`, { form: { name: 'no-token-role', csrf: 'forged' } });
    expect(wrongToken.status).toBe(403);
    const roles = await browser.request(`${server.url}/console/roles`);
    expect(roles.html).not.toContain('no-token-role');
    const csrf = /name="csrf" value="([^"]+)"/.exec(roles.html)![1]!;
    const made = await browser.request(`${server.url}/console/roles`, { form: { name: 'made-in-console', csrf } });
    expect(made.status).toBe(303);
    // Idle: a session unused for longer than the idle time is gone.
    const key = ArtifactKey.fromSecret('x'.repeat(43));
    const { sessionId } = await startConsoleSession(database.database.db, key, rows[0]!.user_id, 'secret', { idleSeconds: 60, maxSeconds: 3600 }, new Date(Date.now() - 120_000));
    expect(await resumeConsoleSession(database.database.db, key, sessionId, { idleSeconds: 60, maxSeconds: 3600 })).toBeUndefined();
    expect(await resumeConsoleSession(database.database.db, key, sessionId, { idleSeconds: 600, maxSeconds: 3600 })).toBeDefined();
  }, 60_000);

  it('signs out, at the next page, a person whose role was taken away', async () => {
    const { db } = database.database;
    await createUser(db, { username: 'grace', password: PASSWORD, roles: ['postern-admin'] }, NO_AUDIT);
    const browser = new HttpBrowser();
    expect((await signIn(browser, 'grace')).status).toBe(200);
    const before = await countSessions();
    await unassignRoleFromUser(db, 'postern-admin', 'grace', NO_AUDIT);
    const page = await browser.request(`${server.url}/console/clients`);
    expect(page.status).toBe(403);
    expect(page.html).toContain('Not an administrator');
    expect(await countSessions()).toBe(before - 1);
    expect(browser.cookies.has('postern.console')).toBe(false);
  }, 60_000);

  it('refuses a person without the role and stores no session for them', async () => {
    const before = await countSessions();
    const page = await signIn(new HttpBrowser(), 'nina');
    expect(page.status).toBe(403);
    expect(page.html).toContain('Not an administrator');
    expect(await countSessions()).toBe(before);
  }, 60_000);

  it('lives on the admin listener only when ADMIN_PORT is set, and signs in across the two', async () => {
    const adminPort = await freePort();
    const separate = await startServer(database.database, { ADMIN_PORT: String(adminPort) });
    const listener = http.createServer(separate.app.adminKoa.callback());
    await new Promise<void>((resolve) => listener.listen(adminPort, '127.0.0.1', resolve));
    try {
      const adminUrl = `http://127.0.0.1:${adminPort}`;
      expect((await new HttpBrowser().request(`${separate.url}/console`)).status).toBe(404);
      expect((await new HttpBrowser().request(`${adminUrl}/console`)).status).toBe(200);
      const previous = server;
      server = separate;
      try {
        const overview = await signIn(new HttpBrowser(), 'ada', adminUrl);
        expect(overview.status).toBe(200);
        expect(overview.html).toContain('<title>Overview · Postern console</title>');
      } finally {
        server = previous;
      }
    } finally {
      listener.closeAllConnections();
      await new Promise((resolve) => listener.close(resolve));
      await separate.close();
    }
  }, 60_000);
});
