// NUL bytes and invalid UTF-8 in any input, on every endpoint: the endpoint's usual 4xx in its
// own format (RFC 6749 JSON, the error page on browser pages, the admin API's error JSON), never a
// 500, and nothing reaches the database (Postgres refuses NUL in text and \u0000 in jsonb).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { freePort } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';
import { signInWorld, startAuthorization, type World } from './support/sign-in.ts';

let tdb: TestDatabase;
let server: TestServer;
let admin: http.Server;
let adminUrl: string;
let adminToken: string;
let separateToken: string;
let service: { id: string; secret: string };
let world: World;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  // A second server, whose admin API has a listener of its own (ADMIN_PORT).
  const separate = await startServer(tdb.database, { ADMIN_PORT: String(await freePort()) });
  admin = http.createServer(separate.app.adminKoa.callback());
  await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', resolve));
  adminUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
  const db = tdb.database.db;
  const adminCredentials = await adminClient(db);
  adminToken = await tokenFor(server.url, adminCredentials);
  // Tokens name their issuer: the second server's admin API takes its own.
  separateToken = await tokenFor(separate.url, adminCredentials);
  const target = await api(db, { scopes: ['read'] });
  service = await serviceClient(db, [(await role(db, [{ api: target.identifier, scopes: ['read'] }])).name]);
  world = await signInWorld(db);
  afterAll(async () => {
    await new Promise((resolve) => admin.close(resolve));
    await separate.close();
  });
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

type Format = 'oauth' | 'page' | 'admin';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const JSON_TYPE = { 'content-type': 'application/json' };
const basic = (raw: string) => `Basic ${Buffer.from(raw, 'utf8').toString('base64')}`;
const basicBytes = (bytes: number[]) => `Basic ${Buffer.from(bytes).toString('base64')}`;

/** A JWT whose claims hold a NUL (`\u0000` in its JSON), signed by a key of its own (as DPoP proofs are). */
async function jwtWithNul(htu: string): Promise<string> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return new SignJWT({ htm: 'POST', htu, jti: 'a\u0000b' })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(publicKey) })
    .setIssuedAt().sign(privateKey);
}

/** Its claims are not UTF-8 (`{"jti":"\xff"}` as bytes), the signature nonsense: checked first all the same. */
const jwtNotUtf8 = () => `${Buffer.from('{"alg":"ES256","typ":"dpop+jwt"}').toString('base64url')}.${Buffer.from([0x7b, 0x22, 0x6a, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]).toString('base64url')}.c2ln`;

interface Case { name: string; format: Format; send(): Promise<Response> }

const cases = (): Case[] => {
  const url = server.url;
  const secret = (id: string, password: string) => basic(`${encodeURIComponent(id)}:${encodeURIComponent(password)}`);
  const token = (body: string, headers: Record<string, string> = {}) => () => fetch(`${url}/token`, { method: 'POST', headers: { ...FORM, ...headers }, body });
  const adminCases = (base: string, where: string, adminToken: string): Case[] => [
    { name: `${where}: NUL in the path`, format: 'admin', send: () => fetch(`${base}/admin/v1/clients/a%00b`, { headers: { authorization: `Bearer ${adminToken}` } }) },
    { name: `${where}: invalid UTF-8 in the path`, format: 'admin', send: () => fetch(`${base}/admin/v1/users/%C3%28`, { headers: { authorization: `Bearer ${adminToken}` } }) },
    { name: `${where}: NUL in the query`, format: 'admin', send: () => fetch(`${base}/admin/v1/audit-events?actor=%00`, { headers: { authorization: `Bearer ${adminToken}` } }) },
    { name: `${where}: %FF in the query`, format: 'admin', send: () => fetch(`${base}/admin/v1/clients?name=%FF`, { headers: { authorization: `Bearer ${adminToken}` } }) },
    { name: `${where}: NUL in a JSON field`, format: 'admin', send: () => fetch(`${base}/admin/v1/users`, { method: 'POST', headers: { ...JSON_TYPE, authorization: `Bearer ${adminToken}` }, body: JSON.stringify({ username: 'nul-user', password: 'a long enough passphrase 1', name: 'a\u0000b' }) }) },
    { name: `${where}: a lone surrogate in a JSON field`, format: 'admin', send: () => fetch(`${base}/admin/v1/apis`, { method: 'POST', headers: { ...JSON_TYPE, authorization: `Bearer ${adminToken}` }, body: '{"identifier":"https://lone.internal","scopes":["read"],"scopeDescriptions":{"read":"\\ud800"}}' }) },
    { name: `${where}: invalid UTF-8 bytes in the JSON body`, format: 'admin', send: () => fetch(`${base}/admin/v1/roles`, { method: 'POST', headers: { ...JSON_TYPE, authorization: `Bearer ${adminToken}` }, body: Buffer.from([...Buffer.from('{"name":"r'), 0xff, ...Buffer.from('"}')]) }) },
    { name: `${where}: X-Forwarded-For not UTF-8`, format: 'admin', send: () => fetch(`${base}/admin/v1/apis`, { headers: { authorization: `Bearer ${adminToken}`, 'x-forwarded-for': '\xff' } }) },
  ];
  return [
    { name: 'discovery: NUL in the query', format: 'oauth', send: () => fetch(`${url}/.well-known/openid-configuration?x=%00`) },
    { name: 'jwks: %FF in the query', format: 'oauth', send: () => fetch(`${url}/jwks?x=%FF`) },
    { name: 'healthz: %C3%28 in the query', format: 'oauth', send: () => fetch(`${url}/healthz?x=%C3%28`) },
    { name: '/auth: NUL in client_id', format: 'page', send: () => fetch(`${url}/auth?client_id=a%00b&response_type=code&scope=openid`, { redirect: 'manual' }) },
    { name: '/auth: invalid UTF-8 in state', format: 'page', send: () => fetch(`${url}/auth?client_id=${world.client.id}&response_type=code&scope=openid&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=%C3%28`, { redirect: 'manual' }) },
    { name: '/auth: a claims parameter with \\u0000', format: 'page', send: () => fetch(`${url}/auth?client_id=${world.client.id}&response_type=code&scope=openid&claims=${encodeURIComponent('{"userinfo":{"name":{"value":"\\u0000"}}}')}`, { redirect: 'manual' }) },
    { name: '/auth (form post): %FF in nonce', format: 'page', send: () => fetch(`${url}/auth`, { method: 'POST', headers: FORM, body: `client_id=${world.client.id}&nonce=%FF`, redirect: 'manual' }) },
    { name: '/token: NUL in client_id (form)', format: 'oauth', send: token(`grant_type=client_credentials&client_id=a%00b&client_secret=x`) },
    { name: '/token: %FF in scope', format: 'oauth', send: token(`grant_type=client_credentials&scope=%FF`, { authorization: secret(service.id, service.secret) }) },
    { name: '/token: raw invalid UTF-8 bytes in the body', format: 'oauth', send: () => fetch(`${url}/token`, { method: 'POST', headers: { ...FORM, authorization: secret(service.id, service.secret) }, body: Buffer.from([...Buffer.from('grant_type=client_credentials&scope='), 0xc3, 0x28]) }) },
    { name: '/token: NUL in the Basic id', format: 'oauth', send: token('grant_type=client_credentials', { authorization: basic('a\u0000b:secret') }) },
    { name: '/token: %00 in the form-encoded Basic secret', format: 'oauth', send: token('grant_type=client_credentials', { authorization: basic(`${service.id}:a%00b`) }) },
    { name: '/token: Basic credentials not UTF-8', format: 'oauth', send: token('grant_type=client_credentials', { authorization: basicBytes([0x61, 0xff, 0x3a, 0x62]) }) },
    { name: '/token: a DPoP proof with a NUL jti', format: 'oauth', send: async () => token('grant_type=client_credentials', { authorization: secret(service.id, service.secret), dpop: await jwtWithNul(`${url}/token`) })() },
    { name: '/token: a DPoP proof whose claims are not UTF-8', format: 'oauth', send: token('grant_type=client_credentials', { authorization: secret(service.id, service.secret), dpop: jwtNotUtf8() }) },
    { name: '/token: a client assertion with a NUL jti', format: 'oauth', send: async () => token(`grant_type=client_credentials&client_id=${service.id}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=${await jwtWithNul(`${url}/token`)}`)() },
    { name: '/token: X-Forwarded-For not UTF-8', format: 'oauth', send: token('grant_type=client_credentials', { authorization: secret(service.id, service.secret), 'x-forwarded-for': '\xff' }) },
    { name: '/token: chunked body with NUL', format: 'oauth', send: () => fetch(`${url}/token`, { method: 'POST', headers: FORM, body: new Blob([`grant_type=client_credentials&client_id=a%00b`]).stream(), duplex: 'half' } as RequestInit) },
    { name: 'introspection: NUL in token', format: 'oauth', send: () => fetch(`${url}/token/introspection`, { method: 'POST', headers: { ...FORM, authorization: secret(service.id, service.secret) }, body: 'token=a%00b' }) },
    { name: 'revocation: %FF in token_type_hint', format: 'oauth', send: () => fetch(`${url}/token/revocation`, { method: 'POST', headers: { ...FORM, authorization: secret(service.id, service.secret) }, body: 'token=abc&token_type_hint=%FF' }) },
    { name: 'registration: \\u0000 in the JSON metadata', format: 'oauth', send: () => fetch(`${url}/reg`, { method: 'POST', headers: { ...JSON_TYPE, authorization: 'Bearer whatever' }, body: '{"client_name":"a\\u0000b"}' }) },
    { name: 'registration: NUL in the path', format: 'oauth', send: () => fetch(`${url}/reg/a%00b`, { headers: { authorization: 'Bearer whatever' } }) },
    { name: 'userinfo: NUL in access_token', format: 'oauth', send: () => fetch(`${url}/me?access_token=a%00b`) },
    { name: 'userinfo: a DPoP token with a NUL in its proof', format: 'oauth', send: async () => fetch(`${url}/me`, { headers: { authorization: 'DPoP abc', dpop: await jwtWithNul(`${url}/me`) } }) },
    { name: '/session/end: NUL in post_logout_redirect_uri', format: 'page', send: () => fetch(`${url}/session/end?post_logout_redirect_uri=%00`, { redirect: 'manual' }) },
    { name: '/session/end/confirm: %FF in the form', format: 'page', send: () => fetch(`${url}/session/end/confirm`, { method: 'POST', headers: FORM, body: 'xsrf=%FF', redirect: 'manual' }) },
    { name: '/interaction: NUL in the path', format: 'page', send: () => fetch(`${url}/interaction/a%00b`, { redirect: 'manual' }) },
    { name: '/interaction login: NUL in the username', format: 'page', send: async () => {
      const flow = await startAuthorization(url, world);
      const page = await flow.browser.submit(flow.page, { username: 'alice\u0000', password: 'whatever' });
      return new Response(page.html, { status: page.status, headers: page.headers });
    } },
    { name: '/interaction login: invalid UTF-8 in the password', format: 'page', send: () => fetch(`${url}/interaction/abc/login`, { method: 'POST', headers: FORM, body: 'username=alice&password=%C3%28', redirect: 'manual' }) },
    { name: 'unknown path: NUL in the query', format: 'oauth', send: () => fetch(`${url}/nowhere?x=%00`) },
    ...adminCases(url, 'admin API on the public listener', adminToken),
    ...adminCases(adminUrl, 'admin API on its own listener', separateToken),
  ];
};

describe('NUL bytes and invalid UTF-8', () => {
  it('get the endpoint\'s usual 4xx in its own format, on every endpoint', async () => {
    const failures: string[] = [];
    for (const { name, format, send } of cases()) {
      const res = await send();
      const text = await res.text();
      const type = res.headers.get('content-type') ?? '';
      let body: any;
      try { body = JSON.parse(text); } catch {}
      const ok = res.status >= 400 && res.status < 500 && (
        format === 'oauth' ? type.includes('json') && typeof body?.error === 'string' && typeof body?.error_description === 'string'
          : format === 'page' ? type.includes('html') && /<html/i.test(text) && !/at .*\.ts:\d+/.test(text)
            : res.status === 400 && body?.error === 'invalid_input' && typeof body?.message === 'string' && typeof body?.requestId === 'string');
      if (!ok) failures.push(`${name}: ${res.status} ${type} ${text.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
  }, 60_000);

  it('are looked for in bodies without a Content-Length too, which then reach the endpoint whole', async () => {
    const chunked = (body: string) => fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { ...FORM, authorization: basic(`${service.id}:${service.secret}`) },
      body: new Blob([body]).stream(),
      duplex: 'half',
    } as RequestInit);
    const ok = await chunked('grant_type=client_credentials&scope=read');
    expect(ok.status).toBe(200);
    expect((await ok.json() as { token_type: string }).token_type).toBe('Bearer');
    const refused = await chunked('grant_type=client_credentials&scope=%00');
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: 'invalid_request' });
    // Past MAX_BODY_BYTES: 413, as with a declared length.
    const huge = await chunked(`grant_type=client_credentials&x=${'a'.repeat(server.config.maxBodyBytes)}`);
    expect(huge.status).toBe(413);
  });

  it('leave nothing in the database', async () => {
    const db = tdb.database.db;
    expect(await db.selectFrom('users').select('username').where('username', '=', 'nul-user').execute()).toEqual([]);
    expect(await db.selectFrom('apis').select('identifier').where('identifier', '=', 'https://lone.internal').execute()).toEqual([]);
  });
});
