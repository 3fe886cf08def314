// The browser-facing routes (the authorization endpoint's resume URL, the sign-in pages, logout)
// answer any request, however odd its parameters or method, with a page or a 4xx: never a 500.
// A client always sends redirect_uri, even with one registered (RFC 9700 §2.1.1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { CALLBACK, signIn, signInWorld, startAuthorization, type World } from './support/sign-in.ts';
import { authorizeUrl, pkce } from './support/browser.ts';
import { Writable } from 'node:stream';

let tdb: TestDatabase;
let server: TestServer;
let world: World;
const errors: string[] = [];

beforeAll(async () => {
  tdb = await createTestDatabase();
  const sink = new Writable({ write(chunk, _encoding, done) { errors.push(String(chunk)); done(); } });
  server = await startServer(tdb.database, {}, '', { logger: createLogger('error', sink) });
  world = await signInWorld(tdb.database.db);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

async function call(path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${server.url}${path}`, { redirect: 'manual', ...init });
  return { status: res.status, type: res.headers.get('content-type') ?? '', location: res.headers.get('location'), text: await res.text() };
}

/** Odd query strings for a resume or sign-in URL: the single-redirect client, unknown ones, wrong modes. */
function oddQueries(clientId: string): string[] {
  const queries = [
    '', `client_id=${clientId}`, 'client_id=unknown', `client_id=${clientId}&client_id=${clientId}`,
    `client_id=${clientId}&redirect_uri=${encodeURIComponent(CALLBACK)}`,
    `client_id=${clientId}&redirect_uri=https%3A%2F%2Fevil.example%2F`,
    `client_id=${clientId}&redirect_uri=not-a-url`,
    `client_id=${clientId}&state=s&response_type=code`,
    `client_id=${clientId}&request=not.a.jwt`, `client_id=${clientId}&request_uri=urn%3Ax`,
    `client_id=${'x'.repeat(200)}`, 'redirect_uri=https%3A%2F%2Fapp.example%2Fcb', 'state=%00',
  ];
  for (const mode of ['query', 'fragment', 'form_post', 'web_message', 'jwt', 'bogus']) {
    queries.push(`client_id=${clientId}&response_mode=${mode}`, `client_id=${clientId}&redirect_uri=${encodeURIComponent(CALLBACK)}&response_mode=${mode}`);
  }
  return queries;
}

function expectNo500(res: { status: number; text: string }, what: string) {
  expect(res.status, what).toBeGreaterThanOrEqual(200);
  expect(res.status, what).toBeLessThan(500);
  expect(res.text, what).not.toContain('server_error');
}

describe('resume and interaction URLs with odd parameters', () => {
  it('answer a page or a 4xx for an unknown uid, whatever the query (GET)', async () => {
    for (const query of oddQueries(world.client.id)) {
      for (const path of ['/auth/unknown-uid', '/interaction/unknown-uid']) {
        const res = await call(`${path}?${query}`);
        expectNo500(res, `${path}?${query}`);
        // An error page, or the error sent to the app at its registered redirect_uri.
        if (res.status < 400) expect(res.location, `${path}?${query}`).toMatch(/^https:\/\/app\.example\/cb[?#]error=/);
      }
    }
    expect(errors.join('')).toBe('');
  });

  it('answer a page or a 4xx for a live interaction reached without its cookies, or with odd parameters', async () => {
    const flow = await startAuthorization(server.url, world);
    const uid = new URL(flow.page.url).pathname.split('/').pop()!;
    for (const query of oddQueries(world.client.id)) {
      for (const path of [`/auth/${uid}`, `/interaction/${uid}`]) {
        expectNo500(await call(`${path}?${query}`), `${path}?${query} without cookies`);
        const withCookies = await flow.browser.request(`${server.url}${path}?${query}`);
        expectNo500({ status: withCookies.status, text: withCookies.html }, `${path}?${query} with cookies`);
      }
    }
    expect(errors.join('')).toBe('');
  });

  it('answer 4xx for a method the route does not take, and for forms that are not forms', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      for (const path of ['/auth/unknown-uid', '/interaction/unknown-uid', '/interaction/unknown-uid/login?client_id=x']) {
        const res = await call(path, { method, body: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        expectNo500(res, `${method} ${path}`);
        expect(res.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      }
    }
    for (const path of ['/interaction/unknown-uid/login', '/interaction/unknown-uid/confirm', '/interaction/unknown-uid/abort']) {
      expectNo500(await call(path), `GET ${path}`);
      expectNo500(await call(path, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }), `POST json ${path}`);
      expectNo500(await call(path, { method: 'POST' }), `POST empty ${path}`);
    }
    for (const query of ['', `client_id=${world.client.id}`, 'client_id=unknown', `client_id=${world.client.id}&post_logout_redirect_uri=https%3A%2F%2Fevil.example`]) {
      expectNo500(await call(`/session/end?${query}`), `/session/end?${query}`);
      expectNo500(await call(`/session/end/confirm?${query}`, { method: 'POST', body: 'xsrf=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), `/session/end/confirm?${query}`);
      expectNo500(await call(`/session/end/success?${query}`), `/session/end/success?${query}`);
    }
    expect(errors.join('')).toBe('');
  });
});

describe('redirect_uri is always required', () => {
  it('refuses an authorization request without redirect_uri from a client with one registered', async () => {
    const { challenge } = pkce();
    const url = authorizeUrl(server.url, {
      client_id: world.client.id, response_type: 'code', scope: 'openid', state: 's', code_challenge: challenge, code_challenge_method: 'S256',
    });
    const res = await call(url.slice(server.url.length));
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/^text\/html/);
    expect(res.text).toContain('redirect_uri');
  });

  it('refuses a code exchange without redirect_uri', async () => {
    const { code, verifier } = await signIn(server.url, world);
    const res = await postForm(`${server.url}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier }, world.client);
    expect(res.status).toBe(400);
    expect(['invalid_grant', 'invalid_request']).toContain(res.body.error);
  });
});

describe('an error that escapes the provider on a browser route', () => {
  it('is an error page (400) and is reported; on other routes it goes on to the outer app', async () => {
    const Koa = (await import('koa')).default;
    const { browserErrorPages } = await import('../src/oidc/browser-errors.ts');
    const { createPages, providerPages } = await import('../src/http/pages.ts');
    const reported: string[] = [];
    const app = new Koa();
    app.use(async (ctx, next) => {
      try { await next(); } catch { ctx.status = 599; ctx.body = 'escaped'; }
    });
    app.use(browserErrorPages(providerPages(createPages()), (ctx, error) => reported.push(`${ctx.oidc.route}: ${(error as Error).message}`)));
    app.use(async (ctx) => {
      (ctx as unknown as { oidc: { route: string } }).oidc = { route: ctx.path.slice(1) };
      throw new TypeError('Cannot read properties of undefined');
    });
    const http = await import('node:http');
    const listener = http.createServer(app.callback()).listen(0, '127.0.0.1');
    await new Promise((resolve) => listener.once('listening', resolve));
    const base = `http://127.0.0.1:${(listener.address() as { port: number }).port}`;
    try {
      for (const route of ['resume', 'authorization', 'end_session', 'end_session_confirm', 'code_verification', 'device_resume']) {
        const res = await fetch(`${base}/${route}`);
        expect(res.status, route).toBe(400);
        expect(res.headers.get('content-type'), route).toMatch(/^text\/html/);
        expect(res.headers.get('cache-control'), route).toBe('no-store');
        expect(await res.text(), route).not.toContain('Cannot read');
      }
      const token = await fetch(`${base}/token`);
      expect(token.status).toBe(599);
      expect(reported).toEqual(['resume', 'authorization', 'end_session', 'end_session_confirm', 'code_verification', 'device_resume']
        .map((route) => `${route}: Cannot read properties of undefined`));
    } finally {
      listener.close();
    }
  });
});
