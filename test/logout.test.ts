// RP-initiated logout over real HTTP (OpenID Connect RP-Initiated Logout 1.0): the confirmation
// page and the return to a registered post-logout URI, the short life of what an anonymous visit
// stores, refusal of unregistered URIs, and every session of a person ended at once. The sign-in
// flow itself: sign-in.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { revokeUserSessions } from '../src/services/users.ts';
import { formAction, hiddenValue, HttpBrowser } from './support/browser.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { startServer, type TestServer } from './support/server.ts';
import {
  AFTER_LOGOUT, exchangeCode, introspect, refresh, signIn, signInWorld, startAuthorization, type World,
} from './support/sign-in.ts';

let database: TestDatabase;
let server: TestServer;
let world: World;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startServer(database.database);
  world = await signInWorld(database.database.db);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

describe('logout', () => {
  it('asks for confirmation and returns to a registered post-logout URI', async () => {
    const flow = await signIn(server.url, world);
    const tokens = (await exchangeCode(server.url, world, flow.code, flow.verifier)).body;
    const url = new URL(`${server.url}/session/end`);
    url.searchParams.set('id_token_hint', tokens.id_token);
    url.searchParams.set('post_logout_redirect_uri', AFTER_LOGOUT);
    url.searchParams.set('state', 'bye');
    const confirm = await flow.browser.get(url.href);
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain('Sign out');
    expect(confirm.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.html)![1]!;
    const done = await flow.browser.request(new URL(/action="([^"]+)"/.exec(confirm.html)![1]!, server.url).href, {
      form: { xsrf, logout: 'yes' },
    });
    expect(done.location).toBe(`${AFTER_LOGOUT}?state=bye`);
    // Signed out: a new authorization asks for the password again.
    const again = await startAuthorization(server.url, world, {}, flow.browser);
    expect(again.page.html).toContain('name="password"');
  });

  it('keeps what an anonymous visit to logout stores for minutes, not a day, and still returns to the app', async () => {
    const browser = new HttpBrowser();
    const url = new URL(`${server.url}/session/end`);
    url.searchParams.set('client_id', world.client.id);
    url.searchParams.set('post_logout_redirect_uri', AFTER_LOGOUT);
    url.searchParams.set('state', 'bye');
    const page = await browser.get(url.href);
    expect(page.status).toBe(200);
    const stored = await database.database.db.selectFrom('oidc_payloads').select('expires_at')
      .where('model', '=', 'Session').where('id', '=', server.storedId('Session', browser.cookies.get('_session')!)).executeTakeFirstOrThrow();
    const lifetime = (stored.expires_at!.getTime() - Date.now()) / 1000;
    expect(lifetime).toBeGreaterThan(500);
    expect(lifetime).toBeLessThanOrEqual(600);
    // RP-Initiated Logout 1.0 §3: back to the registered URI with the state.
    const done = await browser.request(new URL(formAction(page), server.url).href, {
      form: { xsrf: hiddenValue(page, 'xsrf')!, logout: hiddenValue(page, 'logout')! },
    });
    expect(done.location).toBe(`${AFTER_LOGOUT}?state=bye`);
    // A person who signs in gets the full day.
    const flow = await signIn(server.url, world);
    const session = await database.database.db.selectFrom('oidc_payloads').select('expires_at')
      .where('model', '=', 'Session').where('id', '=', server.storedId('Session', flow.browser.cookies.get('_session')!)).executeTakeFirstOrThrow();
    expect(session.expires_at!.getTime() - Date.now()).toBeGreaterThan(23 * 3600 * 1000);
  });

  it('refuses an unregistered post_logout_redirect_uri with an error page', async () => {
    const flow = await signIn(server.url, world);
    const tokens = (await exchangeCode(server.url, world, flow.code, flow.verifier)).body;
    const url = new URL(`${server.url}/session/end`);
    url.searchParams.set('id_token_hint', tokens.id_token);
    url.searchParams.set('post_logout_redirect_uri', 'https://evil.example/bye');
    const page = await flow.browser.request(url.href);
    expect(page.status).toBe(400);
    expect(page.location).toBeUndefined();
    expect(page.html).toContain('post_logout_redirect_uri');
  });

  it('revoke-sessions ends every session and grant of a person', async () => {
    const flow = await signIn(server.url, world);
    const tokens = (await exchangeCode(server.url, world, flow.code, flow.verifier, { resource: world.api.identifier })).body;
    const { revokedGrants } = await revokeUserSessions(database.database.db, world.username, NO_AUDIT);
    expect(revokedGrants).toBeGreaterThan(0);
    expect((await refresh(server.url, world, tokens.refresh_token)).body.error).toBe('invalid_grant');
    expect((await introspect(server.url, world, tokens.access_token)).body.active).toBe(false);
    const again = await startAuthorization(server.url, world, {}, flow.browser);
    expect(again.page.html).toContain('name="password"');
  });
});
