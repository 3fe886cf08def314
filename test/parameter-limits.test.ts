// Length limits of protocol parameters (src/domain/parameter-limits.ts): over its limit, a value gets
// the endpoint's usual invalid_request before anything is looked up or stored; an authorization
// request gets the error page, never a redirect to a redirect_uri nobody has checked.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARAMETER_LIMITS } from '../src/domain/parameter-limits.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { authorizeUrl, pkce } from './support/browser.ts';
import { ROOT } from './support/process.ts';
import { CALLBACK, signInWorld, type World } from './support/sign-in.ts';

let tdb: TestDatabase;
let server: TestServer;
let world: World;
let service: { id: string; secret: string };

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const db = tdb.database.db;
  world = await signInWorld(db);
  const target = await api(db, { scopes: ['read'] });
  service = await serviceClient(db, [(await role(db, [{ api: target.identifier, scopes: ['read'] }])).name]);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

const limit = (name: string) => PARAMETER_LIMITS.get(name)!;
const longer = (name: string) => 'a'.repeat(limit(name) + 1);
const interactions = async () => Number((await tdb.database.db.selectFrom('oidc_payloads')
  .select((eb) => eb.fn.countAll().as('n')).where('model', '=', 'Interaction').executeTakeFirstOrThrow()).n);

function authorization(params: Record<string, string> = {}): string {
  return authorizeUrl(server.url, {
    client_id: world.client.id, response_type: 'code', redirect_uri: CALLBACK, scope: 'openid',
    code_challenge: pkce().challenge, code_challenge_method: 'S256', state: 's', ...params,
  });
}

describe('authorization requests', () => {
  it('take each parameter up to its limit, and refuse one character more with the error page', async () => {
    const atLimit = await fetch(authorization({ state: 'a'.repeat(limit('state')), nonce: 'n'.repeat(limit('nonce')) }), { redirect: 'manual' });
    expect(atLimit.status).toBe(303);
    expect(atLimit.headers.get('location')).toMatch(/\/interaction\//);

    const before = await interactions();
    for (const name of ['state', 'nonce', 'login_hint', 'ui_locales', 'acr_values', 'claims', 'id_token_hint', 'max_age',
      'code_challenge', 'redirect_uri', 'scope', 'resource', 'prompt', 'response_mode', 'request_uri', 'dpop_jkt']) {
      const res = await fetch(authorization({ [name]: longer(name) }), { redirect: 'manual' });
      const html = await res.text();
      expect(res.status, name).toBe(400);
      expect(res.headers.get('location'), name).toBeNull();
      expect(res.headers.get('content-type'), name).toMatch(/html/);
      expect(html, name).toContain(`${name} must be at most ${limit(name)} characters`);
      expect(html, name).toContain('invalid_request');
    }
    // The same in a form post, and in a pushed authorization request (RFC 9126: JSON).
    const posted = await fetch(`${server.url}/auth`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `client_id=${world.client.id}&state=${longer('state')}`,
    });
    expect(posted.status).toBe(400);
    expect(posted.headers.get('content-type')).toMatch(/html/);
    const pushed = await postForm(`${server.url}/request`, {
      response_type: 'code', redirect_uri: CALLBACK, scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256',
      state: longer('state'),
    }, world.client);
    expect(pushed.status).toBe(400);
    expect(pushed.body).toEqual({ error: 'invalid_request', error_description: `state must be at most ${limit('state')} characters` });
    // Nothing was stored for any of them.
    expect(await interactions()).toBe(before);
  });
});

describe('the token, introspection, revocation, userinfo and logout endpoints', () => {
  it('refuse a value over its limit with invalid_request', async () => {
    const json = async (path: string, form: Record<string, string>, credentials?: { id: string; secret: string }) => {
      const res = await postForm(`${server.url}${path}`, form, credentials);
      const name = Object.keys(form).at(-1)!;
      expect(res.status, `${path} ${name}`).toBe(400);
      expect(res.body, `${path} ${name}`).toEqual({ error: 'invalid_request', error_description: `${name} must be at most ${limit(name)} characters` });
    };
    for (const name of ['scope', 'resource']) await json('/token', { grant_type: 'client_credentials', [name]: longer(name) }, service);
    for (const name of ['code', 'code_verifier', 'redirect_uri']) await json('/token', { grant_type: 'authorization_code', [name]: longer(name) }, world.client);
    await json('/token', { grant_type: 'refresh_token', refresh_token: longer('refresh_token') }, world.client);
    await json('/token', { grant_type: longer('grant_type') }, service);
    await json('/token/introspection', { token: longer('token') }, service);
    await json('/token/introspection', { token: 'x', token_type_hint: longer('token_type_hint') }, service);
    await json('/token/revocation', { token: longer('token') }, service);
    await json('/me', { access_token: longer('access_token') });

    for (const name of ['post_logout_redirect_uri', 'id_token_hint', 'state', 'logout_hint', 'ui_locales']) {
      const res = await fetch(`${server.url}/session/end?client_id=${world.client.id}&${name}=${longer(name)}`, { redirect: 'manual' });
      expect(res.status, name).toBe(400);
      expect(res.headers.get('content-type'), name).toMatch(/html/);
      expect(await res.text(), name).toContain(`${name} must be at most ${limit(name)} characters`);
    }
  });

  it('keep answering as before under the limits', async () => {
    const ok = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', scope: 'read' }, service);
    expect(ok.status).toBe(200);
    const unknown = await postForm(`${server.url}/token`, { grant_type: 'refresh_token', refresh_token: 'r'.repeat(limit('refresh_token')) }, world.client);
    expect(unknown.body.error).toBe('invalid_grant');
  });
});

describe('the README', () => {
  it('lists every limit as the code has it', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Input limits'), readme.indexOf('## The admin API'));
    for (const [name, max] of PARAMETER_LIMITS) {
      const row = section.split('\n').find((line) => line.startsWith('|') && line.includes(`\`${name}\``));
      expect(row, name).toBeDefined();
      // The row gives the limit of the group the parameter is in.
      const cells = row!.split('|').map((cell) => cell.trim());
      const at = cells.findIndex((cell) => cell.includes(`\`${name}\``));
      expect(cells[at + 1], name).toMatch(new RegExp(`^${max.toLocaleString('en-US')}\\b`));
    }
  });
});
