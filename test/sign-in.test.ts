// Browser sign-in over real HTTP: login, consent, code + PKCE, tokens, userinfo, refresh
// rotation, and every error path the issue names. Logout: logout.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateApi } from '../src/services/apis.ts';
import { setClientEnabled } from '../src/services/clients.ts';
import { grantScopes, ungrantScopes } from '../src/services/roles.ts';
import { authorizeUrl, HttpBrowser, pkce } from './support/browser.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import {
  CALLBACK, codeFrom, decodeJwt, exchangeCode, introspect, PASSWORD, refresh, signIn, signInWorld,
  startAuthorization, type World,
} from './support/sign-in.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let database: TestDatabase;
let server: TestServer;
let world: World;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startServer(database.database, { LOGIN_MAX_FAILURES: '3', LOGIN_SLOW_DOWN_AFTER: '10' });
  world = await signInWorld(database.database.db);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

describe('the sign-in flow', () => {
  it('logs in, asks consent in plain words, and returns a code that PKCE exchanges for tokens', async () => {
    const flow = await startAuthorization(server.url, world);
    expect(flow.page.status).toBe(200);
    expect(flow.page.html).toContain('Sign in');
    // Every sign-in page: no caching, strict CSP, no framing, no sniffing.
    expect(flow.page.headers.get('cache-control')).toBe('no-store');
    expect(flow.page.headers.get('content-security-policy')).toMatch(/default-src 'none'.*frame-ancestors 'none'/);
    expect(flow.page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(flow.page.html).not.toMatch(/<script|https?:\/\/(?!app\.example)[^"]*\.(css|js)/);

    const consent = await flow.browser.submit(flow.page, { username: world.username, password: PASSWORD });
    expect(consent.status).toBe(200);
    expect(consent.html).toContain('See your email address');
    expect(consent.html).toContain('Stay connected while you are away');
    expect(consent.html).toContain('orders:read');
    // Requested, but not granted by the person's roles: left out, and said so.
    expect(consent.html).toMatch(/Not included[^<]*orders:write/);

    const back = await flow.browser.submit(consent, { decision: 'allow' }, { stopAt: CALLBACK });
    const code = codeFrom(back, flow.state);

    const tokens = await exchangeCode(server.url, world, code, flow.verifier);
    expect(tokens.status).toBe(200);
    expect(tokens.body).toMatchObject({ token_type: 'Bearer', scope: expect.stringContaining('openid') });
    expect(tokens.body.id_token).toBeTypeOf('string');
    expect(tokens.body.refresh_token).toBeTypeOf('string');
    const idToken = decodeJwt(tokens.body.id_token);
    expect(idToken.sub).toBe(world.user.id);
    expect(idToken.aud).toBe(world.client.id);

    // Without `resource`: a token for userinfo, which returns the claims of the granted scopes.
    const userinfo = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${tokens.body.access_token}` } });
    expect(userinfo.status).toBe(200);
    expect(await userinfo.json()).toEqual({
      sub: world.user.id,
      name: 'Alice Example',
      preferred_username: world.username,
      updated_at: expect.any(Number),
      email: `${world.username}@example.com`,
      email_verified: false,
      roles: [world.role.name],
    });

    // A refresh names the API: a JWT with only what the person's roles grant, and their roles.
    const forApi = await refresh(server.url, world, tokens.body.refresh_token, { resource: world.api.identifier });
    expect(forApi.status).toBe(200);
    const claims = decodeJwt(forApi.body.access_token);
    expect(claims).toMatchObject({ sub: world.user.id, aud: world.api.identifier, scope: 'orders:read', roles: [world.role.name] });
    expect(forApi.body.refresh_token).not.toBe(tokens.body.refresh_token);

    const active = await introspect(server.url, world, forApi.body.access_token);
    expect(active.body).toMatchObject({ active: true, sub: world.user.id, scope: 'orders:read' });
  });

  it('shows the words an administrator wrote for an API scope, escaped', async () => {
    const other = await signInWorld(database.database.db);
    await updateApi(database.database.db, other.api.id, { scopeDescriptions: { 'orders:read': 'See your <orders> & invoices' } }, NO_AUDIT);
    const flow = await startAuthorization(server.url, other);
    const consent = await flow.browser.submit(flow.page, { username: other.username, password: PASSWORD });
    expect(consent.status).toBe(200);
    expect(consent.html).toContain('See your &lt;orders&gt; &amp; invoices');
    expect(consent.html).not.toContain('Use &quot;orders:read&quot;');
  });

  it('does not ask again for what was granted, unless the app asks for consent', async () => {
    const first = await signIn(server.url, world);
    expect(first.code).toBeTruthy();
    const again = await startAuthorization(server.url, world, { prompt: '' }, first.browser);
    // Same browser session, everything already granted: straight back to the app.
    expect(codeFrom(again.page, again.state)).toBeTruthy();
  });

  it('skips consent for first-party apps', async () => {
    const own = await signInWorld(database.database.db, { firstParty: true });
    const flow = await startAuthorization(server.url, own);
    const back = await flow.browser.submit(flow.page, { username: own.username, password: PASSWORD }, { stopAt: CALLBACK });
    const tokens = await exchangeCode(server.url, own, codeFrom(back, flow.state), flow.verifier, { resource: own.api.identifier });
    expect(tokens.status).toBe(200);
    expect(decodeJwt(tokens.body.access_token).scope).toBe('orders:read');
  });

  it('serves public clients with PKCE and no secret', async () => {
    const spa = await signInWorld(database.database.db, { public: true });
    const flow = await signIn(server.url, spa);
    const response = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code: flow.code, code_verifier: flow.verifier, redirect_uri: CALLBACK, client_id: spa.client.id,
      }),
    });
    expect(response.status).toBe(200);
  });
});

describe('a disabled public client', () => {
  it('is refused at the token endpoint with its client_id alone: 401 invalid_client', async () => {
    const spa = await signInWorld(database.database.db, { public: true });
    const flow = await signIn(server.url, spa);
    const exchange = () => postForm(`${server.url}/token`, {
      grant_type: 'authorization_code', code: flow.code, code_verifier: flow.verifier, redirect_uri: CALLBACK, client_id: spa.client.id,
    });
    await setClientEnabled(database.database.db, spa.client.id, false, NO_AUDIT);
    const refused = await exchange();
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
  });
});

describe('login errors', () => {
  it('answers a wrong password and an unknown user with the same generic message', async () => {
    const flow = await startAuthorization(server.url, world);
    const wrong = await flow.browser.submit(flow.page, { username: world.username, password: 'not the password at all' });
    const unknown = await flow.browser.submit(wrong, { username: 'nobody-here', password: 'not the password at all' });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.html).toContain('Wrong username or password.');
    expect(unknown.html).toContain('Wrong username or password.');
    expect(wrong.html).not.toContain('not the password at all');
  });

  it('locks a username after repeated failures, for real and unknown users alike, with Retry-After', async () => {
    const locked = await signInWorld(database.database.db);
    for (const username of [locked.username, 'ghost-user']) {
      const browser = new HttpBrowser();
      browser.forwardedFor = undefined;
      const flow = await startAuthorization(server.url, { ...locked }, {}, browser);
      let page = flow.page;
      for (let i = 0; i < 3; i++) page = await browser.submit(page, { username, password: 'wrong password guess' });
      expect(page.html).toContain('sign-in is paused');
      const refused = await browser.submit(page, { username, password: PASSWORD });
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(800);
      expect(refused.html).toMatch(/Too many failed sign-in attempts\. Try again in \d+ minutes/);
    }
  });

  it('refuses a form without its CSRF token', async () => {
    const flow = await startAuthorization(server.url, world);
    const action = new URL(/action="([^"]+\/login)"/.exec(flow.page.html)![1]!, server.url).href;
    const forged = await flow.browser.request(action, { form: { username: world.username, password: PASSWORD } });
    expect(forged.status).toBe(403);
    expect(forged.location).toBeUndefined();
    const tampered = await flow.browser.request(action, { form: { csrf: 'x-forged', username: world.username, password: PASSWORD } });
    expect(tampered.status).toBe(403);
  });

  it('refuses a consent decision or a cancellation without its CSRF token, and the interaction goes on', async () => {
    const flow = await startAuthorization(server.url, world);
    const abort = new URL(/action="([^"]+\/abort)"/.exec(flow.page.html)![1]!, server.url).href;
    for (const form of [{}, { csrf: 'x-forged' }] as Record<string, string>[]) {
      const refused = await flow.browser.request(abort, { form });
      expect(refused.status).toBe(403);
      expect(refused.location).toBeUndefined();
    }

    const consent = await flow.browser.submit(flow.page, { username: world.username, password: PASSWORD });
    const confirm = new URL(/action="([^"]+\/confirm)"/.exec(consent.html)![1]!, server.url).href;
    for (const form of [{ decision: 'allow' }, { csrf: 'x-forged', decision: 'allow' }, { decision: 'deny' }] as Record<string, string>[]) {
      const refused = await flow.browser.request(confirm, { form });
      expect(refused.status).toBe(403);
      expect(refused.location).toBeUndefined();
    }
    // Another browser's valid token is no good either: it is bound to that browser's cookie.
    const other = await startAuthorization(server.url, world);
    const othersToken = /name="csrf" value="([^"]+)"/.exec(other.page.html)![1]!;
    expect((await flow.browser.request(confirm, { form: { csrf: othersToken, decision: 'allow' } })).status).toBe(403);

    // None of that answered the interaction: the real form still completes it.
    const back = await flow.browser.submit(consent, { decision: 'allow' }, { stopAt: CALLBACK });
    expect(codeFrom(back, flow.state)).toBeTruthy();
  });

  it('shows an error page for a stale, unknown or replayed interaction', async () => {
    const unknown = await new HttpBrowser().get(`${server.url}/interaction/does-not-exist`);
    expect(unknown.status).toBe(400);
    expect(unknown.html).toContain('has expired or was already used');
    expect(unknown.html).not.toMatch(/at .*\.ts:\d+/);

    const flow = await signIn(server.url, world);
    // The interaction is over: posting to it again gets the same page, not a 500.
    const replay = await flow.browser.request(`${server.url}/interaction/${'x'.repeat(21)}/login`, {
      form: { csrf: 'x', username: world.username, password: PASSWORD },
    });
    expect(replay.status).toBe(400);
  });
});

describe('authorization request errors', () => {
  it('shows an error page, and does not redirect, for an unregistered redirect_uri', async () => {
    const { challenge } = pkce();
    const page = await new HttpBrowser().request(authorizeUrl(server.url, {
      client_id: world.client.id, response_type: 'code', redirect_uri: 'https://evil.example/cb', scope: 'openid',
      code_challenge: challenge, code_challenge_method: 'S256',
    }));
    expect(page.status).toBe(400);
    expect(page.location).toBeUndefined();
    expect(page.html).toContain('redirect_uri');
    expect(page.headers.get('content-type')).toMatch(/html/);
  });

  it('requires PKCE of every client, confidential ones included', async () => {
    const page = await new HttpBrowser().request(authorizeUrl(server.url, {
      client_id: world.client.id, response_type: 'code', redirect_uri: CALLBACK, scope: 'openid', state: 's1',
    }));
    expect(page.status).toBe(303);
    const url = new URL(page.location!);
    expect(url.origin + url.pathname).toBe(CALLBACK);
    expect(url.searchParams.get('error')).toBe('invalid_request');
    expect(url.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  it('refuses a code exchange with the wrong verifier', async () => {
    const flow = await signIn(server.url, world);
    const response = await exchangeCode(server.url, world, flow.code, pkce().verifier);
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_grant');
  });
});

describe('codes and refresh tokens are single-use', () => {
  it('refuses a reused code and revokes what it issued', async () => {
    const flow = await signIn(server.url, world);
    const first = await exchangeCode(server.url, world, flow.code, flow.verifier, { resource: world.api.identifier });
    expect(first.status).toBe(200);
    expect((await introspect(server.url, world, first.body.access_token)).body.active).toBe(true);

    const second = await exchangeCode(server.url, world, flow.code, flow.verifier, { resource: world.api.identifier });
    expect(second.status).toBe(400);
    expect(second.body.error).toBe('invalid_grant');
    // RFC 6749 §4.1.2: the tokens issued from the code are revoked, JWT access token included.
    expect((await introspect(server.url, world, first.body.access_token)).body.active).toBe(false);
    expect((await refresh(server.url, world, first.body.refresh_token)).body.error).toBe('invalid_grant');
  });

  it('rotates refresh tokens and revokes the grant when a used one is replayed', async () => {
    const flow = await signIn(server.url, world);
    const tokens = (await exchangeCode(server.url, world, flow.code, flow.verifier)).body;
    const next = await refresh(server.url, world, tokens.refresh_token, { resource: world.api.identifier });
    expect(next.status).toBe(200);
    expect(next.body.refresh_token).not.toBe(tokens.refresh_token);

    const replay = await refresh(server.url, world, tokens.refresh_token);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    // The whole grant is gone: the new refresh token and the access token with it.
    expect((await refresh(server.url, world, next.body.refresh_token)).body.error).toBe('invalid_grant');
    expect((await introspect(server.url, world, next.body.access_token)).body.active).toBe(false);
  });

  it('lets exactly one of several parallel refreshes with one token through', async () => {
    const flow = await signIn(server.url, world);
    const tokens = (await exchangeCode(server.url, world, flow.code, flow.verifier)).body;
    const results = await Promise.all(Array.from({ length: 6 }, () => refresh(server.url, world, tokens.refresh_token)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    for (const result of results.filter((r) => r.status !== 200)) expect(result.body.error).toBe('invalid_grant');
  });
});

describe('a person\'s roles count at every refresh', () => {
  it('a scope taken from their role is gone from the next token', async () => {
    const db = database.database.db;
    const person = await signInWorld(db);
    const resource = person.api.identifier;
    await grantScopes(db, person.role.name, { api: resource, scopes: ['orders:write'] }, NO_AUDIT);
    const flow = await signIn(server.url, person);
    const tokens = await exchangeCode(server.url, person, flow.code, flow.verifier, { resource });
    expect(tokens.status).toBe(200);
    const scopesOf = (answer: { body: { access_token: string } }) => String(decodeJwt(answer.body.access_token).scope ?? '').split(' ').filter(Boolean).sort();
    expect(scopesOf(tokens)).toEqual(['orders:read', 'orders:write']);

    await ungrantScopes(db, person.role.name, { api: resource, scopes: ['orders:write'] }, NO_AUDIT);
    const next = await refresh(server.url, person, tokens.body.refresh_token, { resource });
    expect(next.status).toBe(200);
    expect(scopesOf(next)).toEqual(['orders:read']);
    expect(decodeJwt(next.body.access_token).roles).toEqual([person.role.name]);
    expect((await introspect(server.url, person, next.body.access_token)).body.scope).toBe('orders:read');
  });
});

describe('the audit log of sign-ins', () => {
  it('records login success, failure and lockout with who, where and which app, and never a password', async () => {
    const audited = await signInWorld(database.database.db);
    const flow = await startAuthorization(server.url, audited);
    const wrong = 'audit-wrong-password-1';
    await flow.browser.submit(flow.page, { username: audited.username, password: wrong });
    await signIn(server.url, audited);
    await server.app.audit.flush({ counts: true });
    const rows = await database.database.db.selectFrom('audit_events').selectAll()
      .where('type', 'like', 'login.%').where('client_id', '=', audited.client.id).orderBy('occurred_at').execute();
    expect(rows.map((row) => [row.type, row.outcome])).toEqual([['login.failure', 'failure'], ['login.success', 'success']]);
    // Failures are counted per address and app, with the usernames tried as examples (docs/audit.md),
    // written after the success.
    expect(rows[0]).toMatchObject({ actor_type: 'anonymous', source_address: '127.0.0.1', details: { usernames: [audited.username], count: 1 } });
    expect(rows[1]).toMatchObject({ actor_type: 'user', actor_id: audited.user.id, user_id: audited.user.id });
    expect(rows[1]!.request_id).toBeTruthy();
    const everything = JSON.stringify(await database.database.db.selectFrom('audit_events').selectAll().execute());
    for (const secret of [PASSWORD, wrong, audited.client.secret]) expect(everything).not.toContain(secret);
  });
});
