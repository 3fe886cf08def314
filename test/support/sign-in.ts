// Fixtures for sign-in flows: an API, a person with a role on it, and a web app.
import { decodeJwt } from 'jose';
import type { Kysely } from 'kysely';
import type { Tables } from '../../src/db/tables.ts';
import { createClient } from '../../src/services/clients.ts';
import { createUser } from '../../src/services/users.ts';
import { api, role, unique } from './fixtures.ts';
import { authorizeUrl, HttpBrowser, pkce, type Page } from './browser.ts';
import { postForm } from './server.ts';
import { NO_AUDIT } from '../../src/domain/audit-events.ts';

export const PASSWORD = 'correct horse battery staple';
export const CALLBACK = 'https://app.example/cb';
export const AFTER_LOGOUT = 'https://app.example/bye';

export async function signInWorld(db: Kysely<Tables>, options: { firstParty?: boolean; public?: boolean } = {}) {
  const orders = await api(db, { scopes: ['orders:read', 'orders:write'] });
  const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
  const username = unique('alice');
  const user = await createUser(db, {
    username, password: PASSWORD, email: `${username}@example.com`, name: 'Alice Example', roles: [reader.name],
  }, NO_AUDIT);
  const created = await createClient(db, {
    name: unique('webapp'),
    grantTypes: ['authorization_code'],
    redirectUris: [CALLBACK],
    postLogoutRedirectUris: [AFTER_LOGOUT],
    firstParty: options.firstParty,
    public: options.public,
  }, NO_AUDIT);
  return {
    api: orders,
    role: reader,
    user,
    username,
    client: { id: created.client.clientId, secret: created.clientSecret ?? '' },
  };
}

export type World = Awaited<ReturnType<typeof signInWorld>>;

export interface Authorization { browser: HttpBrowser; verifier: string; state: string; page: Page }

/** Starts an authorization request and follows it to the first page (login, usually). */
export async function startAuthorization(
  issuer: string,
  world: World,
  params: Record<string, string> = {},
  browser = new HttpBrowser(),
): Promise<Authorization> {
  const { verifier, challenge } = pkce();
  const state = unique('state');
  const url = authorizeUrl(issuer, {
    client_id: world.client.id,
    response_type: 'code',
    redirect_uri: CALLBACK,
    scope: 'openid profile email roles offline_access orders:read orders:write',
    resource: world.api.identifier,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    prompt: 'consent',
    ...params,
  });
  return { browser, verifier, state, page: await browser.get(url, CALLBACK) };
}

/** The code in a redirect to the app, checking the state. */
export function codeFrom(page: Page, state: string): string {
  if (!page.location?.startsWith(CALLBACK)) throw new Error(`expected a redirect to the app, got ${page.status}: ${page.html.slice(0, 300)}`);
  const url = new URL(page.location);
  if (url.searchParams.get('state') !== state) throw new Error('state mismatch');
  const code = url.searchParams.get('code');
  if (!code) throw new Error(`no code: ${url.search}`);
  return code;
}

/** Login and consent with the right password: the authorization code. */
export async function signIn(issuer: string, world: World, params: Record<string, string> = {}) {
  const flow = await startAuthorization(issuer, world, params);
  let page = await flow.browser.submit(flow.page, { username: world.username, password: PASSWORD }, { stopAt: CALLBACK });
  if (!page.location) page = await flow.browser.submit(page, { decision: 'allow' }, { stopAt: CALLBACK });
  return { ...flow, code: codeFrom(page, flow.state) };
}

export async function exchangeCode(issuer: string, world: World, code: string, verifier: string, extra: Record<string, string> = {}) {
  return postForm(`${issuer}/token`, {
    grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CALLBACK, ...extra,
  }, world.client);
}

export async function refresh(issuer: string, world: World, refreshToken: string, extra: Record<string, string> = {}) {
  return postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra }, world.client);
}

export async function introspect(issuer: string, world: World, token: string) {
  return postForm(`${issuer}/token/introspection`, { token }, world.client);
}

export { decodeJwt };
