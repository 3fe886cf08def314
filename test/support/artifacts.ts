// A full sign-in of a public app, a service token and a self-registration over real HTTP, keeping
// every value seen on the way that, presented to Postern, acts as proof: tokens, codes, cookies,
// interaction ids. For tests of what the database holds, and of what still works after an upgrade.
import { sql, type Kysely } from 'kysely';
import type { Tables } from '../../src/db/tables.ts';
import { updateApi } from '../../src/services/apis.ts';
import { createRegistrationToken } from '../../src/services/registration.ts';
import { authorizeUrl, HttpBrowser, pkce, type Page } from './browser.ts';
import { role, serviceClient, unique } from './fixtures.ts';
import { postForm } from './server.ts';
import { CALLBACK, codeFrom, PASSWORD, signInWorld, startAuthorization, type World } from './sign-in.ts';
import { NO_AUDIT } from '../../src/domain/audit-events.ts';

export interface Artifacts {
  /** Label → value, for every bearer value seen. */
  values: Map<string, string>;
  spa: World;
  /** Signed in (its session cookie is live). */
  browser: HttpBrowser;
  /** The current refresh token of the sign-in (an earlier one was used to get it). */
  refreshToken: string;
  /** The opaque access token of the person, and one of a service. */
  personToken: string;
  serviceToken: string;
  /** May introspect every token. */
  introspector: { id: string; secret: string };
  /** A code issued and not yet exchanged. */
  pendingCode: { code: string; verifier: string };
  /** Another browser, at the login page of an interaction in progress (of a pushed request). */
  waiting: { browser: HttpBrowser; page: Page; state: string };
  registration: { uri: string; token: string };
}

/** A public client (no secret) exchanges with its client_id in the body. */
export const publicToken = (issuer: string, spa: World, form: Record<string, string>) =>
  postForm(`${issuer}/token`, { ...form, client_id: spa.client.id });

export const introspectWith = (issuer: string, caller: { id: string; secret: string }, token: string) =>
  postForm(`${issuer}/token/introspection`, { token }, caller);

/** An authorization by a browser already signed in and consented: straight back with a code. */
export async function authorizeAgain(issuer: string, spa: World, browser: HttpBrowser) {
  const { verifier, challenge } = pkce();
  const state = unique('state');
  const page = await browser.get(authorizeUrl(issuer, {
    client_id: spa.client.id, response_type: 'code', redirect_uri: CALLBACK, scope: 'openid offline_access orders:read',
    resource: spa.api.identifier, state, code_challenge: challenge, code_challenge_method: 'S256',
  }), CALLBACK);
  return { code: codeFrom(page, state), verifier };
}

export async function runFullSignIn(issuer: string, db: Kysely<Tables>): Promise<Artifacts> {
  const values = new Map<string, string>();
  const keep = (label: string, value: unknown) => {
    if (typeof value !== 'string' || value.length < 8) throw new Error(`${label}: expected a value, got ${String(value)}`);
    values.set(label, value);
  };
  const keepCookies = (browser: HttpBrowser, step: string) => {
    for (const [name, value] of browser.cookies) if (value.length >= 8) values.set(`cookie ${name} (${step})`, value);
  };

  const spa = await signInWorld(db, { public: true });
  // Opaque: the person's access tokens are stored too.
  await updateApi(db, spa.api.identifier, { tokenFormat: 'opaque' }, NO_AUDIT);

  const flow = await startAuthorization(issuer, spa);
  keep('interaction id (login)', /\/interaction\/([^/?#]+)/.exec(flow.page.url)?.[1]);
  keepCookies(flow.browser, 'login page');
  const consent = await flow.browser.submit(flow.page, { username: spa.username, password: PASSWORD }, { stopAt: CALLBACK });
  keep('interaction id (consent)', /\/interaction\/([^/?#]+)/.exec(consent.url)?.[1]);
  keepCookies(flow.browser, 'consent page');
  const back = await flow.browser.submit(consent, { decision: 'allow' }, { stopAt: CALLBACK });
  keepCookies(flow.browser, 'signed in');
  const code = codeFrom(back, flow.state);
  keep('authorization code (exchanged)', code);

  const tokens = await publicToken(issuer, spa, {
    grant_type: 'authorization_code', code, code_verifier: flow.verifier, redirect_uri: CALLBACK, resource: spa.api.identifier,
  });
  if (tokens.status !== 200) throw new Error(`code exchange: ${tokens.status} ${JSON.stringify(tokens.body)}`);
  keep('access token (first)', tokens.body.access_token);
  keep('refresh token (used)', tokens.body.refresh_token);
  const rotated = await publicToken(issuer, spa, {
    grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token, resource: spa.api.identifier,
  });
  if (rotated.status !== 200) throw new Error(`refresh: ${rotated.status} ${JSON.stringify(rotated.body)}`);
  keep('access token (refreshed)', rotated.body.access_token);
  keep('refresh token (current)', rotated.body.refresh_token);

  const pendingCode = await authorizeAgain(issuer, spa, flow.browser);
  keep('authorization code (pending)', pendingCode.code);
  keepCookies(flow.browser, 'second authorization');

  // RFC 9126: a pushed request, then the browser with its request_uri only.
  const state = unique('state');
  const pushed = await postForm(`${issuer}/request`, {
    client_id: spa.client.id, response_type: 'code', redirect_uri: CALLBACK, scope: 'openid offline_access orders:read',
    resource: spa.api.identifier, state, code_challenge: pkce().challenge, code_challenge_method: 'S256', prompt: 'consent',
  });
  if (pushed.status !== 201) throw new Error(`pushed request: ${pushed.status} ${JSON.stringify(pushed.body)}`);
  keep('pushed request id', String(pushed.body.request_uri).split(':').at(-1));
  const waiting = { browser: new HttpBrowser(), state, page: undefined as unknown as Page };
  waiting.page = await waiting.browser.get(authorizeUrl(issuer, { client_id: spa.client.id, request_uri: pushed.body.request_uri }), CALLBACK);
  keep('interaction id (in progress)', /\/interaction\/([^/?#]+)/.exec(waiting.page.url)?.[1]);
  keepCookies(waiting.browser, 'in progress');

  const serviceRole = await role(db, [{ api: spa.api.identifier, scopes: ['orders:read'] }]);
  const introspectRole = await role(db, [{ api: 'urn:postern', scopes: ['introspect'] }]);
  const service = await serviceClient(db, [serviceRole.name, introspectRole.name]);
  const serviceToken = await postForm(`${issuer}/token`, { grant_type: 'client_credentials', resource: spa.api.identifier }, service);
  if (serviceToken.status !== 200) throw new Error(`client credentials: ${serviceToken.status} ${JSON.stringify(serviceToken.body)}`);
  keep('client credentials token', serviceToken.body.access_token);

  const initial = await createRegistrationToken(db, { roles: [serviceRole.name] }, NO_AUDIT);
  const registered = await fetch(`${issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${initial.token}` },
    body: JSON.stringify({ client_name: unique('registered'), grant_types: ['client_credentials'] }),
  });
  const registration = await registered.json() as Record<string, string>;
  if (registered.status !== 201) throw new Error(`registration: ${registered.status} ${JSON.stringify(registration)}`);
  keep('initial access token', initial.token);
  keep('registration access token', registration.registration_access_token);
  keep('registered client secret', registration.client_secret);

  return {
    values,
    spa,
    browser: flow.browser,
    refreshToken: rotated.body.refresh_token,
    personToken: rotated.body.access_token,
    serviceToken: serviceToken.body.access_token,
    introspector: service,
    pendingCode,
    waiting,
    registration: { uri: registration.registration_client_uri!, token: registration.registration_access_token! },
  };
}

/** What each kept artifact does when presented again (`WORKING` when all is well). */
export async function presentAgain(issuer: string, seen: Artifacts) {
  const { spa, introspector } = seen;
  const active = async (token: string) => (await introspectWith(issuer, introspector, token)).body.active === true;
  const personToken = await active(seen.personToken);
  const serviceToken = await active(seen.serviceToken);
  const exchanged = await publicToken(issuer, spa, {
    grant_type: 'authorization_code', code: seen.pendingCode.code, code_verifier: seen.pendingCode.verifier, redirect_uri: CALLBACK,
  });
  const refreshed = await publicToken(issuer, spa, { grant_type: 'refresh_token', refresh_token: seen.refreshToken });
  // The session: straight back with a code, no password asked.
  const session = await authorizeAgain(issuer, spa, seen.browser).then(() => true, () => false);
  // The interaction in progress takes the password, asks for consent and ends with a code.
  const { browser, page, state } = seen.waiting;
  const consent = await browser.submit(page, { username: spa.username, password: PASSWORD }, { stopAt: CALLBACK });
  const interaction = consent.status === 200 && consent.html.includes('name="decision"')
    && await browser.submit(consent, { decision: 'allow' }, { stopAt: CALLBACK }).then((back) => Boolean(codeFrom(back, state)), () => false);
  const managed = await fetch(seen.registration.uri, { headers: { authorization: `Bearer ${seen.registration.token}` } });
  return {
    personToken,
    serviceToken,
    pendingCode: exchanged.status,
    refreshToken: refreshed.status,
    session,
    interaction,
    registration: managed.status,
  };
}

export const WORKING = {
  personToken: true, serviceToken: true, pendingCode: 200, refreshToken: 200, session: true, interaction: true, registration: 200,
};

/** Every row of every table, all columns, as text: what a dump of the database shows. */
export async function dumpDatabase(db: Kysely<Tables>): Promise<string> {
  const tables = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`.execute(db);
  const texts: string[] = [];
  for (const { name } of tables.rows) {
    const rows = await sql<{ row: string }>`select t::text as row from ${sql.table(name)} t`.execute(db);
    texts.push(...rows.rows.map((row) => `${name}: ${row.row}`));
  }
  return texts.join('\n');
}

/** The labels of the values found in `dump`. */
export function valuesIn(dump: string, values: Map<string, string>): string[] {
  return [...values].filter(([, value]) => dump.includes(value)).map(([label]) => label);
}
