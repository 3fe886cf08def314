// The admin console over plain HTTP, on both databases: its headers, what it stores (nothing
// before sign-in; a hash of the session id after), the checks of the sign-in's return, idle
// expiry, and refusals of changes without a session or a CSRF token; the forms that change a
// sign-in app's redirect URIs, a workload's binding and a route rule; paged lists (the holders
// of a role, route rules); the overview's warning of clients that never got a token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { startConsoleSession, resumeConsoleSession, CONSOLE_CLIENT_ID } from '../src/services/console-sessions.ts';
import { createClient, deleteClient, getClient } from '../src/services/clients.ts';
import { describeOverview } from '../src/services/console-overview.ts';
import { createRole, unassignRoleFromUser } from '../src/services/roles.ts';
import { createIssuer, getIssuer } from '../src/services/trusted-issuers.ts';
import { createRoute, getRoute, listRoutes } from '../src/services/routes.ts';
import { createUser } from '../src/services/users.ts';
import { ArtifactKey } from '../src/domain/artifact-hashing.ts';
import { authorizeUrl, HttpBrowser, pkce } from './support/browser.ts';
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

  it('changes a web app\'s redirect URIs on its page, on every server before the form returns; refusals are form errors', async () => {
    const { db } = database.database;
    const web = (await createClient(db, {
      name: 'orders-web', grantTypes: ['authorization_code'], redirectUris: ['https://app.example/cb'], postLogoutRedirectUris: ['https://app.example/'],
    }, NO_AUDIT)).client;
    // Another server on the same database (the console's app left pointing at this one).
    const other = await startServer(database.database, { CONSOLE_URL: server.url });
    try {
      const authorize = async (redirectUri: string) => (await new HttpBrowser().request(authorizeUrl(other.url, {
        client_id: web.clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid', state: 'st',
        code_challenge: pkce().challenge, code_challenge_method: 'S256',
      }))).status;
      expect(await authorize('https://app.example/cb')).toBe(303);
      expect(await authorize('https://app.example/callback')).toBe(400);
      const browser = new HttpBrowser();
      await signIn(browser, 'ada');
      const page = await browser.request(`${server.url}/console/clients/${web.clientId}`);
      expect(page.html).toContain('>https://app.example/cb</textarea>');
      const csrf = csrfOf(page.html);
      const at = `${server.url}/console/clients/${web.clientId}/redirect-uris`;
      // One a line; a comma belongs to the URI.
      const uris = { redirectUris: 'https://app.example/callback\r\nhttps://app.example/other?a=1,2\r\n', postLogoutRedirectUris: '' };
      const saved = await browser.request(at, { form: { csrf, ...uris } });
      expect(saved.status).toBe(303);
      expect((await browser.request(saved.location!)).html).toContain('Redirect URIs saved.');
      // The other server uses the new list as soon as the form has returned.
      expect(await authorize('https://app.example/callback')).toBe(303);
      expect(await authorize('https://app.example/other?a=1,2')).toBe(303);
      expect(await authorize('https://app.example/cb')).toBe(400);
      expect(await getClient(db, web.clientId)).toMatchObject({
        redirectUris: ['https://app.example/callback', 'https://app.example/other?a=1,2'], postLogoutRedirectUris: [],
      });
      // The rules of creation: refused, with what was typed shown again, and nothing changed.
      for (const [form, text] of [
        [{ redirectUris: 'http://app.example/cb' }, 'must use https'],
        [{ redirectUris: 'https://app.example/cb#top' }, 'without a fragment'],
        [{ redirectUris: '' }, 'at least one redirect URI'],
        [{ redirectUris: 'com.example.app:/cb' }, 'private-use scheme'],
        [{ redirectUris: 'https://app.example/cb', postLogoutRedirectUris: 'javascript:alert(1)' }, 'redirect URI &quot;javascript:alert(1)&quot; must use https'],
      ] as const) {
        const refused = await browser.request(at, { form: { csrf, postLogoutRedirectUris: '', ...form } });
        expect(refused.status, text).toBe(400);
        expect(refused.html).toContain('role="alert"');
        expect(refused.html).toContain(text);
        expect(refused.html).toContain(`>${form.redirectUris.replace('&', '&amp;')}</textarea>`);
      }
      expect((await getClient(db, web.clientId)).redirectUris).toEqual(['https://app.example/callback', 'https://app.example/other?a=1,2']);
      // A service has no redirects: no form, and a forged one is refused by the service.
      const service = (await createClient(db, { name: 'redirectless' }, NO_AUDIT)).client;
      expect((await browser.request(`${server.url}/console/clients/${service.clientId}`)).html).not.toContain('redirect-uris');
      const notSignIn = await browser.request(`${server.url}/console/clients/${service.clientId}/redirect-uris`, { form: { csrf, redirectUris: 'https://app.example/cb' } });
      expect(notSignIn.status).toBe(400);
      expect(notSignIn.html).toContain('only to authorization_code clients');
      // The console's own app takes them from where the console is served.
      const own = await browser.request(`${server.url}/console/clients/${CONSOLE_CLIENT_ID}`);
      expect(own.html).toContain('every server sets its redirect URIs at start');
      expect(own.html).not.toContain('Save redirect URIs');
      expect((await browser.request(`${server.url}/console/clients/${CONSOLE_CLIENT_ID}/redirect-uris`, { form: { csrf, redirectUris: 'https://evil.example/cb' } })).status).toBe(400);
      expect((await getClient(db, CONSOLE_CLIENT_ID)).redirectUris).toEqual([`${server.url}/console/callback`]);
      await expectAuditedBy('ada', ['client.updated'], web.clientId);
      const event = await db.selectFrom('audit_events').select('details').where('target_id', '=', web.clientId).executeTakeFirstOrThrow();
      expect(event.details).toEqual({ name: 'orders-web', enabled: true, fields: ['redirectUris', 'postLogoutRedirectUris'] });
    } finally {
      await other.close();
    }
  }, 60_000);

  it('refuses to delete the console\'s own app, from its page and from the service', async () => {
    const { db } = database.database;
    const browser = new HttpBrowser();
    await signIn(browser, 'ada');
    const csrf = csrfOf((await browser.request(`${server.url}/console/clients/${CONSOLE_CLIENT_ID}`)).html);
    const refused = await browser.request(`${server.url}/console/clients/${CONSOLE_CLIENT_ID}/delete`, { form: { csrf, confirm: 'postern-console' } });
    expect(refused.status).toBe(409);
    await expect(deleteClient(db, CONSOLE_CLIENT_ID, NO_AUDIT)).rejects.toThrow('cannot be deleted');
    expect((await getClient(db, CONSOLE_CLIENT_ID)).clientId).toBe(CONSOLE_CLIENT_ID);
  });

  it('binds a workload to a trusted issuer when it is made, and changes the binding on its page', async () => {
    const { db } = database.database;
    const ci = await createIssuer(db, { name: 'ci-runners', issuer: 'https://ci.example', jwksUri: 'https://ci.example/jwks' }, { development: false }, NO_AUDIT);
    const stage = await createIssuer(db, { name: 'k8s-stage', issuer: 'https://stage.example', kind: 'kubernetes', jwksUri: 'https://stage.example/jwks' }, { development: false }, NO_AUDIT);
    const browser = new HttpBrowser();
    await signIn(browser, 'ada');
    const form = await browser.request(`${server.url}/console/clients/new`);
    expect(form.html).toContain('value="workload"');
    const csrf = csrfOf(form.html);
    const workload = { csrf, name: 'deployer', kind: 'workload', federatedIssuer: ci.id, federatedSubject: 'repo:acme/shop:ref:refs/heads/main', federatedClaims: 'repository_owner=acme\r\n' };
    const noSubject = await browser.request(`${server.url}/console/clients/new`, { form: { ...workload, federatedSubject: '' } });
    expect(noSubject.status).toBe(400);
    expect(noSubject.html).toContain('federatedSubject must be');
    const made = await browser.request(`${server.url}/console/clients/new`, { form: workload });
    // No secret to show: straight to its page.
    expect(made.status).toBe(303);
    const id = /\/console\/clients\/([^?]+)/.exec(made.location!)![1]!;
    expect(await getClient(db, id)).toMatchObject({
      tokenEndpointAuthMethod: 'federated_jwt', secrets: [],
      federation: { issuer: 'ci-runners', subject: 'repo:acme/shop:ref:refs/heads/main', claims: { repository_owner: 'acme' } },
    });
    const page = await browser.request(`${server.url}/console/clients/${id}`);
    expect(page.html).toContain('Save binding');
    expect(page.html).toContain('>repository_owner=acme</textarea>');
    const at = `${server.url}/console/clients/${id}/federation`;
    const binding = { csrf, federatedIssuer: stage.id, federatedSubject: 'system:serviceaccount:shop:deployer', federatedClaims: 'kubernetes.io/namespace = shop' };
    expect((await browser.request(at, { form: binding })).status).toBe(303);
    expect((await getClient(db, id)).federation).toMatchObject({
      issuer: 'k8s-stage', subject: 'system:serviceaccount:shop:deployer', claims: { 'kubernetes.io/namespace': 'shop' },
    });
    await createClient(db, { name: 'stage-other', federated: { issuer: 'k8s-stage', subject: 'system:serviceaccount:shop:other' } }, NO_AUDIT);
    for (const [changed, status, text] of [
      [{ federatedClaims: 'no-equals-sign' }, 400, 'name=value'],
      [{ federatedClaims: 'sub=someone' }, 400, 'is checked already'],
      [{ federatedIssuer: 'nope' }, 400, 'unknown trusted issuer'],
      [{ federatedSubject: 'system:serviceaccount:shop:other' }, 409, 'another client is bound'],
    ] as const) {
      const refused = await browser.request(at, { form: { ...binding, ...changed } });
      expect(refused.status, text).toBe(status);
      expect(refused.html).toContain('role="alert"');
      expect(refused.html).toContain(text);
    }
    expect((await getClient(db, id)).federation!.subject).toBe('system:serviceaccount:shop:deployer');
    const service = (await createClient(db, { name: 'not-a-workload' }, NO_AUDIT)).client;
    expect((await browser.request(`${server.url}/console/clients/${service.clientId}`)).html).not.toContain('Save binding');
    const notFederated = await browser.request(`${server.url}/console/clients/${service.clientId}/federation`, { form: binding });
    expect(notFederated.status).toBe(400);
    expect(notFederated.html).toContain('does not authenticate with federated_jwt');
    // The issuer's page links its clients to the page where their binding changes.
    expect((await browser.request(`${server.url}/console/trusted-issuers/${stage.id}`)).html).toContain('<a href="/console/clients/deployer">deployer</a>');
    await expectAuditedBy('ada', ['client.created', 'client.updated'], id);
  }, 60_000);

  it('changes a route rule on its page: checked whole again and used at once; refusals keep what was typed', async () => {
    const { db } = database.database;
    const rule = await createRoute(db, { api: 'https://orders.example', host: 'orders.example', methods: ['GET'], path: '/invoices/{id}', scopesAll: ['orders:read'] }, NO_AUDIT);
    await createRoute(db, { api: 'https://orders.example', host: 'orders.example', methods: ['POST'], path: '/invoices/{id}', scopesAll: ['orders:write'] }, NO_AUDIT);
    const browser = new HttpBrowser();
    await signIn(browser, 'ada');
    const page = await browser.request(`${server.url}/console/route-policies/${rule.id}`);
    expect(page.html).toContain('Save rule');
    expect(page.html).toContain('name="path" required value="/invoices/{id}"');
    const csrf = csrfOf(page.html);
    const at = `${server.url}/console/route-policies/${rule.id}`;
    const form = {
      csrf, host: 'orders.example', methods: 'GET HEAD', path: '/invoices/{id}', scopesAll: 'orders:write', scopesAny: '', roles: '', clients: '',
      senderConstrained: 'dpop', rateLimitPerMinute: '120', cacheSeconds: '',
    };
    const saved = await browser.request(at, { form });
    expect(saved.status).toBe(303);
    expect((await browser.request(saved.location!)).html).toContain(`Rule ${rule.id} saved.`);
    expect(await getRoute(db, rule.id)).toMatchObject({
      api: 'https://orders.example', host: 'orders.example', methods: ['GET', 'HEAD'], scopesAll: ['orders:write'], senderConstrained: 'dpop',
      rateLimitPerMinute: 120, cacheSeconds: null,
    });
    // The route table of this process has it before the form returned.
    const check = await browser.request(`${server.url}/console/route-policies?method=HEAD&url=${encodeURIComponent('https://orders.example/invoices/7')}`);
    expect(check.html).toContain(`Decided by rule <a href="/console/route-policies/${rule.id}">`);
    for (const [changed, status, text] of [
      [{ scopesAll: 'orders:nope' }, 400, 'does not define orders:nope'],
      [{ methods: 'POST' }, 409, 'already covers'],
      [{ rateLimitPerMinute: 'lots' }, 400, 'The rate limit is a whole number'],
      [{ public: 'on' }, 400, 'a public rule needs no token'],
      [{ path: 'invoices' }, 400, 'path'],
    ] as const) {
      const refused = await browser.request(at, { form: { ...form, ...changed } });
      expect(refused.status, text).toBe(status);
      expect(refused.html).toContain('role="alert"');
      expect(refused.html).toContain(text);
      const [name, value] = Object.entries(changed)[0]!;
      if (name !== 'public') expect(refused.html).toContain(`name="${name}"${name === 'path' ? ' required' : ''} value="${value}"`);
    }
    expect((await getRoute(db, rule.id)).methods).toEqual(['GET', 'HEAD']);
    // Emptied fields clear: any host.
    expect((await browser.request(at, { form: { ...form, host: '', senderConstrained: '', rateLimitPerMinute: '' } })).status).toBe(303);
    expect(await getRoute(db, rule.id)).toMatchObject({ host: null, senderConstrained: null, rateLimitPerMinute: null });
    await expectAuditedBy('ada', ['route.updated', 'route.updated'], rule.id);
  }, 60_000);

  it('pages through the holders of a role and through route rules, searched and filtered', async () => {
    const { db } = database.database;
    const role = await createRole(db, { name: 'paged-role' }, NO_AUDIT);
    for (let i = 0; i < 30; i++) await createClient(db, { name: `holder-${String(i).padStart(2, '0')}`, roles: ['paged-role'] }, NO_AUDIT);
    // People straight into the tables: 27 password hashes would only slow the test down.
    const people = Array.from({ length: 27 }, (_, i) => ({ id: `usr_paged${i}`, username: `member-${String(i).padStart(2, '0')}`, password_hash: 'x' }));
    await db.insertInto('users').values(people).execute();
    await db.insertInto('user_roles').values(people.map((person) => ({ user_id: person.id, role_id: role.id }))).execute();
    const browser = new HttpBrowser();
    await signIn(browser, 'ada');
    const shown = (html: string, prefix: string) => [...html.matchAll(new RegExp(`>(${prefix}-\\d\\d)</a>`, 'g'))].map((match) => match[1]);
    const href = (html: string, text: string) => {
      const link = new RegExp(`href="([^"]+)">${text}</a>`).exec(html);
      return link ? `${server.url}${link[1]!.replaceAll('&amp;', '&')}` : undefined;
    };
    const names = (prefix: string, from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${prefix}-${String(from + i).padStart(2, '0')}`);
    const first = await browser.request(`${server.url}/console/roles/paged-role`);
    expect(first.html).toContain('30 clients and 27 people hold this role.');
    expect(shown(first.html, 'holder')).toEqual(names('holder', 0, 25));
    expect(shown(first.html, 'member')).toEqual(names('member', 0, 25));
    expect(href(first.html, 'First page of clients')).toBeUndefined();
    const second = await browser.request(href(first.html, 'Next page of clients')!);
    expect(shown(second.html, 'holder')).toEqual(names('holder', 25, 30));
    expect(shown(second.html, 'member')).toEqual(names('member', 0, 25));
    expect(href(second.html, 'Next page of clients')).toBeUndefined();
    expect(href(second.html, 'First page of clients')).toBe(`${server.url}/console/roles/${role.id}`);
    // The people's next page keeps the clients' page.
    const both = await browser.request(href(second.html, 'Next page of people')!);
    expect(shown(both.html, 'holder')).toEqual(names('holder', 25, 30));
    expect(shown(both.html, 'member')).toEqual(names('member', 25, 27));
    const searched = await browser.request(`${server.url}/console/roles/paged-role?q=holder-2`);
    expect(shown(searched.html, 'holder')).toEqual(names('holder', 20, 30));
    expect(searched.html).toContain('None match.');
    expect((await browser.request(`${server.url}/console/roles/paged-role?clients=forged`)).status).toBe(400);

    // Route rules: 31 under /paged/, one of them for any host (listed after the named host's).
    const made = [await createRoute(db, { api: 'https://orders.example', path: '/paged/any' }, NO_AUDIT)];
    for (let i = 0; i < 30; i++) made.push(await createRoute(db, { api: 'https://orders.example', host: 'orders.example', path: `/paged/${String(i).padStart(2, '0')}` }, NO_AUDIT));
    const ids = (html: string) => [...html.matchAll(/<td><a href="\/console\/route-policies\/(route_[^"]+)">/g)].map((match) => match[1]);
    const rules = await browser.request(`${server.url}/console/route-policies?api=${encodeURIComponent('https://orders.example')}&path=/paged/`);
    expect(ids(rules.html)).toEqual(made.slice(1, 26).map((rule) => rule.id));
    const next = href(rules.html, 'Next page')!;
    expect(next).toContain('path=%2Fpaged%2F');
    const last = await browser.request(next);
    expect(ids(last.html)).toEqual([...made.slice(26), made[0]!].map((rule) => rule.id));
    expect(href(last.html, 'Next page')).toBeUndefined();
    expect(href(last.html, 'First page')).toBe(`${server.url}/console/route-policies?api=${encodeURIComponent('https://orders.example')}&path=%2Fpaged%2F`);
    const forged = await browser.request(`${server.url}/console/route-policies?cursor=${Buffer.from('["x"]').toString('base64url')}`);
    expect(forged.status).toBe(400);
    expect(forged.html).toContain('cursor is not one this server returned');
  }, 120_000);

  it('shows a read-only administrator no write control on any page, and refuses forged changes with 403', async () => {
    const { db } = database.database;
    const browser = new HttpBrowser();
    await signIn(browser, 'rory');
    const rule = (await listRoutes(db))[0]!;
    const web = await getClient(db, 'orders-web');
    const workload = await getClient(db, 'deployer');
    for (const path of ['/route-policies', '/trusted-issuers', `/route-policies/${rule.id}`, '/roles/paged-role', `/clients/${web.clientId}`, `/clients/${workload.clientId}`]) {
      const page = await browser.request(`${server.url}/console${path}`);
      expect(page.status, path).toBe(200);
      // The only form that posts is the sign-out.
      expect(page.html.match(/method="post"/g), path).toHaveLength(1);
    }
    const csrf = csrfOf((await browser.request(`${server.url}/console/route-policies`)).html);
    const routes = (await listRoutes(db)).length;
    const forged = await browser.request(`${server.url}/console/route-policies`, { form: { csrf, api: 'https://orders.example', path: '/forged' } });
    expect(forged.status).toBe(403);
    expect(forged.html).toContain('admin:write');
    expect((await browser.request(`${server.url}/console/trusted-issuers`, { form: { csrf, name: 'forged', issuer: 'https://forged.example', source: 'discovery' } })).status).toBe(403);
    for (const [path, form] of [
      [`/route-policies/${rule.id}`, { path: '/forged', methods: 'DELETE' }],
      [`/clients/${web.clientId}/redirect-uris`, { redirectUris: 'https://forged.example/cb' }],
      [`/clients/${workload.clientId}/federation`, { federatedIssuer: 'k8s-stage', federatedSubject: 'system:serviceaccount:forged:x' }],
      ['/clients/new', { name: 'forged-workload', kind: 'workload', federatedIssuer: 'k8s-stage', federatedSubject: 'forged' }],
    ] as const) {
      const refused = await browser.request(`${server.url}/console${path}`, { form: { csrf, ...form } });
      expect(refused.status, path).toBe(403);
    }
    expect(await listRoutes(db)).toHaveLength(routes);
    expect(await getRoute(db, rule.id)).toEqual(rule);
    expect((await getClient(db, web.clientId)).redirectUris).toEqual(web.redirectUris);
    expect((await getClient(db, workload.clientId)).federation).toEqual(workload.federation);
    await expect(getIssuer(db, 'forged')).rejects.toThrow();
    await expect(getClient(db, 'forged-workload')).rejects.toThrow();
  }, 60_000);

  it('warns on the overview of enabled clients that never got a token, whatever else the log holds', async () => {
    const { db } = database.database;
    const made = [];
    for (const name of ['quiet-one', 'busy-one', 'quiet-disabled']) made.push((await createClient(db, { name }, NO_AUDIT)).client.clientId);
    const [quiet, busy, disabled] = made as [string, string, string];
    await db.updateTable('clients').set({ created_at: new Date(Date.now() - 2 * 86_400_000) } as never).where('client_id', 'in', made).execute();
    await db.updateTable('clients').set({ enabled: false }).where('client_id', '=', disabled).execute();
    await db.insertInto('audit_events').values([
      { type: 'token.issued', actor_type: 'client', actor_id: busy, client_id: busy, outcome: 'success', details: JSON.stringify({ count: 3 }) },
      { type: 'token.failure', actor_type: 'client', actor_id: quiet, client_id: quiet, outcome: 'failure', details: JSON.stringify({ count: 1 }) },
      { type: 'token.issued', actor_type: 'anonymous', actor_id: null, client_id: null, outcome: 'success', details: '{}' },
    ] as never).execute();
    const overview = await describeOverview(db, { hours: 1, secretMaxAgeDays: 90, rotationDays: 90 });
    const unused = overview.warnings.filter((warning) => warning.kind === 'unused');
    expect(unused).toEqual([{ kind: 'unused', text: 'quiet-one: no token issued in the audit log', link: `/clients/${quiet}` }]);
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
