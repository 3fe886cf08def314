// The admin console over plain HTTP, on both databases: its headers, what it stores (nothing
// before sign-in; a hash of the session id after), the checks of the sign-in's return, idle
// expiry, and refusals of changes without a session or a CSRF token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { startConsoleSession, resumeConsoleSession, CONSOLE_CLIENT_ID } from '../src/services/console-sessions.ts';
import { createClient, deleteClient } from '../src/services/clients.ts';
import { createRole, unassignRoleFromUser } from '../src/services/roles.ts';
import { getIssuer } from '../src/services/trusted-issuers.ts';
import { listRoutes } from '../src/services/routes.ts';
import { createUser } from '../src/services/users.ts';
import { ArtifactKey } from '../src/domain/artifact-hashing.ts';
import { HttpBrowser } from './support/browser.ts';
import { api } from './support/fixtures.ts';
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

const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)![1]!;

/** The events of `target`, of these types, each with the person `username` as actor. */
async function expectAuditedBy(username: string, types: string[], target: string) {
  await server.app.audit.flush();
  const { db } = database.database;
  const user = await db.selectFrom('users').select('id').where('username', '=', username).executeTakeFirstOrThrow();
  const events = await db.selectFrom('audit_events').select(['type', 'actor_type', 'actor_id', 'client_id'])
    .where('target_id', '=', target).orderBy('occurred_at').execute();
  // Sorted: events of one millisecond have no order.
  expect(events.map((event) => event.type).sort()).toEqual([...types].sort());
  for (const event of events) expect(event).toMatchObject({ actor_type: 'user', actor_id: user.id, client_id: CONSOLE_CLIENT_ID });
}

describe('the admin console over HTTP', () => {
  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startServer(database.database);
    const { db } = database.database;
    await createUser(db, { username: 'ada', password: PASSWORD, roles: ['postern-admin'] }, NO_AUDIT);
    await createUser(db, { username: 'nina', password: PASSWORD }, NO_AUDIT);
    await api(db, { identifier: 'https://orders.example', name: 'orders', scopes: ['orders:read', 'orders:write'] });
    await createRole(db, { name: 'console-readers', grants: [{ api: 'urn:postern', scopes: ['admin:read'] }] }, NO_AUDIT);
    await createUser(db, { username: 'rory', password: PASSWORD, roles: ['console-readers'] }, NO_AUDIT);
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

  it('creates, checks and deletes a route rule through the forms; a refusal of the service is a form error', async () => {
    const browser = new HttpBrowser();
    await signIn(browser, 'ada');
    const list = await browser.request(`${server.url}/console/route-policies`);
    expect(list.status).toBe(200);
    expect(list.html).toContain('<title>Route policies · Postern console</title>');
    const csrf = csrfOf(list.html);
    const rule = { csrf, api: 'https://orders.example', host: 'orders.example', methods: 'GET', path: '/orders/{id}', scopesAll: 'orders:read', rateLimitPerMinute: '600' };
    const made = await browser.request(`${server.url}/console/route-policies`, { form: rule });
    expect(made.status).toBe(303);
    const id = /route-policies\/(route_[^?]+)/.exec(made.location!)![1]!;
    expect((await listRoutes(database.database.db)).map((each) => each.id)).toEqual([id]);
    const page = await browser.request(new URL(made.location!, server.url).href);
    expect(page.html).toContain(`Rule ${id} created.`);
    expect(page.html).toContain('/orders/{id}');
    // The service's refusals: a scope the API lacks, a tie with the rule above, bad numbers.
    for (const [form, status, text] of [
      [{ ...rule, scopesAll: 'orders:nope' }, 400, 'does not define orders:nope'],
      [rule, 409, 'already covers'],
      [{ ...rule, methods: 'POST', rateLimitPerMinute: 'lots' }, 400, 'The rate limit is a whole number'],
      [{ ...rule, api: 'https://nowhere.example' }, 404, 'unknown API'],
      [{ ...rule, methods: 'PUT', public: 'on' }, 400, 'a public rule needs no token'],
    ] as const) {
      const refused = await browser.request(`${server.url}/console/route-policies`, { form });
      expect(refused.status, text).toBe(status);
      expect(refused.html).toContain('role="alert"');
      expect(refused.html).toContain(text);
    }
    expect(await listRoutes(database.database.db)).toHaveLength(1);
    // The check: the rule and its decision for a request without a token.
    const check = await browser.request(`${server.url}/console/route-policies?method=GET&url=${encodeURIComponent('https://orders.example/orders/7')}`);
    expect(check.status).toBe(200);
    expect(check.html).toContain(`Decided by rule <a href="/console/route-policies/${id}">`);
    expect(check.html).toContain('denied (401');
    const uncovered = await browser.request(`${server.url}/console/route-policies?method=DELETE&url=${encodeURIComponent('https://orders.example/orders/7')}`);
    expect(uncovered.html).toContain('No rule covers it.');
    const badUrl = await browser.request(`${server.url}/console/route-policies?method=GET&url=orders`);
    expect(badUrl.status).toBe(400);
    expect(badUrl.html).toContain('Give the full URL');
    expect((await browser.request(`${server.url}/console/route-policies?api=https://nowhere.example`)).status).toBe(400);
    expect((await browser.request(`${server.url}/console/route-policies?host=elsewhere.example`)).html).toContain('No rules match.');
    // Deleted by typing its id; the audit log names the person.
    expect((await browser.request(`${server.url}/console/route-policies/${id}/delete`, { form: { csrf, confirm: 'route_other' } })).status).toBe(400);
    const deleted = await browser.request(`${server.url}/console/route-policies/${id}/delete`, { form: { csrf, confirm: id } });
    expect(deleted.status).toBe(303);
    expect(await listRoutes(database.database.db)).toEqual([]);
    await expectAuditedBy('ada', ['route.created', 'route.deleted'], id);
  }, 60_000);

  it('creates, disables and deletes a trusted issuer; a bound client shows its binding and stops the delete', async () => {
    const { db } = database.database;
    const browser = new HttpBrowser();
    await signIn(browser, 'ada');
    const csrf = csrfOf((await browser.request(`${server.url}/console/trusted-issuers`)).html);
    const issuer = { csrf, name: 'k8s-prod', issuer: 'https://k8s.example', kind: 'kubernetes', source: 'jwks_uri', jwksUri: 'https://k8s.example/openid/v1/jwks' };
    const made = await browser.request(`${server.url}/console/trusted-issuers`, { form: issuer });
    expect(made.status).toBe(303);
    const id = (await getIssuer(db, 'k8s-prod')).id;
    expect(made.location).toContain(`/console/trusted-issuers/${id}`);
    for (const [form, status, text] of [
      [issuer, 409, 'already exists'],
      [{ ...issuer, name: 'other', source: 'static', jwks: 'not json' }, 400, 'not JSON'],
      [{ ...issuer, name: 'other', issuer: 'ftp://k8s.example' }, 400, 'issuer must'],
      [{ ...issuer, name: 'other', kind: 'mainframe' }, 400, 'kind must be one of'],
    ] as const) {
      const refused = await browser.request(`${server.url}/console/trusted-issuers`, { form });
      expect(refused.status, text).toBe(status);
      expect(refused.html).toContain('role="alert"');
      expect(refused.html).toContain(text);
    }
    const client = await createClient(db, { name: 'orders-worker', federated: { issuer: 'k8s-prod', subject: 'system:serviceaccount:shop:orders', claims: { 'kubernetes.io/namespace': 'shop' } } }, NO_AUDIT);
    const clientPage = await browser.request(`${server.url}/console/clients/${client.client.clientId}`);
    expect(clientPage.html).toContain('Federated identity');
    expect(clientPage.html).toContain('system:serviceaccount:shop:orders');
    expect(clientPage.html).toContain('kubernetes.io/namespace');
    expect((await browser.request(`${server.url}/console/trusted-issuers/${id}/disable`, { form: { csrf } })).status).toBe(303);
    expect((await getIssuer(db, id)).enabled).toBe(false);
    expect((await browser.request(`${server.url}/console/trusted-issuers/${id}/enable`, { form: { csrf } })).status).toBe(303);
    expect((await getIssuer(db, id)).enabled).toBe(true);
    const refused = await browser.request(`${server.url}/console/trusted-issuers/${id}/delete`, { form: { csrf, confirm: 'k8s-prod' } });
    expect(refused.status).toBe(409);
    expect(refused.html).toContain('authenticates orders-worker');
    await deleteClient(db, client.client.clientId, NO_AUDIT);
    expect((await browser.request(`${server.url}/console/trusted-issuers/${id}/delete`, { form: { csrf, confirm: 'k8s-prod' } })).status).toBe(303);
    expect((await browser.request(`${server.url}/console/trusted-issuers/${id}`)).status).toBe(404);
    await expectAuditedBy('ada', ['issuer.created', 'issuer.updated', 'issuer.updated', 'issuer.deleted'], id);
  }, 60_000);

  it('shows a read-only administrator the two pages without a write control, and refuses forged changes with 403', async () => {
    const { db } = database.database;
    const browser = new HttpBrowser();
    await signIn(browser, 'rory');
    for (const path of ['/route-policies', '/trusted-issuers']) {
      const page = await browser.request(`${server.url}/console${path}`);
      expect(page.status).toBe(200);
      // The only form that posts is the sign-out.
      expect(page.html.match(/method="post"/g), path).toHaveLength(1);
    }
    const csrf = csrfOf((await browser.request(`${server.url}/console/route-policies`)).html);
    const forged = await browser.request(`${server.url}/console/route-policies`, { form: { csrf, api: 'https://orders.example', path: '/forged' } });
    expect(forged.status).toBe(403);
    expect(forged.html).toContain('admin:write');
    expect((await browser.request(`${server.url}/console/trusted-issuers`, { form: { csrf, name: 'forged', issuer: 'https://forged.example', source: 'discovery' } })).status).toBe(403);
    expect(await listRoutes(db)).toEqual([]);
    await expect(getIssuer(db, 'forged')).rejects.toThrow();
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
