// The token endpoint with the client-credentials grant, over real HTTP.
import http from 'node:http';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateApi } from '../src/services/apis.ts';
import { deleteClient, rotateClientSecret, setClientEnabled } from '../src/services/clients.ts';
import { assignRoleToClient } from '../src/services/roles.ts';
import { sql } from 'kysely';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;
let orders: Awaited<ReturnType<typeof api>>;
let billing: Awaited<ReturnType<typeof serviceClient>>;

const token = (form: Record<string, string>, credentials: { id: string; secret: string } = billing) =>
  postForm(`${server.url}/token`, { grant_type: 'client_credentials', ...form }, credentials);

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const db = tdb.database.db;
  orders = await api(db, { scopes: ['orders:read', 'orders:write', 'orders:admin'] });
  const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read', 'orders:write'] }]);
  billing = await serviceClient(db, [reader.name]);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('client credentials', () => {
  it('issues an RFC 9068 JWT that verifies against /jwks', async () => {
    const res = await token({ resource: orders.identifier, scope: 'orders:read' });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'orders:read' });

    const header = decodeProtectedHeader(res.body.access_token);
    expect(header).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    expect(header.kid).toBeTypeOf('string');

    const jwks = (await (await fetch(`${server.url}/jwks`)).json()) as { keys: Record<string, unknown>[] };
    for (const key of jwks.keys) expect(key.d).toBeUndefined();
    const { payload } = await jwtVerify(res.body.access_token, createLocalJWKSet(jwks as never), {
      issuer: server.url, audience: orders.identifier, typ: 'at+jwt',
    });
    expect(payload).toMatchObject({
      iss: server.url,
      sub: billing.id,
      client_id: billing.id,
      aud: orders.identifier,
      scope: 'orders:read',
    });
    expect(payload.roles).toHaveLength(1);
    expect(payload.jti).toBeTypeOf('string');
    expect(payload.exp! - payload.iat!).toBe(300);
  });

  it('gives the whole granted set when no scope is asked for, and the only API when no resource is named', async () => {
    const res = await token({});
    expect(res.status).toBe(200);
    expect(res.body.scope.split(' ').sort()).toEqual(['orders:read', 'orders:write']);
  });

  it('refuses a scope the API defines but the roles do not grant: invalid_scope', async () => {
    const res = await token({ resource: orders.identifier, scope: 'orders:read orders:admin' });
    expect(res.status).toBe(400);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toMatchObject({
      error: 'invalid_scope',
      error_description: 'scope "orders:admin" is not granted to this client',
    });
  });

  it('refuses a scope the API does not define: invalid_scope', async () => {
    const res = await token({ scope: 'payments:read' });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      error: 'invalid_scope',
      error_description: `scope "payments:read" is not defined by ${orders.identifier}`,
    });
  });

  it('refuses an unknown resource: invalid_target', async () => {
    const res = await token({ resource: 'https://unknown.internal' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_target', error_description: 'unknown resource' });
  });

  it('refuses a resource that is not a URI: invalid_target', async () => {
    const res = await token({ resource: 'not a uri' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_target');
  });

  it('asks for a resource when the client may call several APIs: invalid_target', async () => {
    const db = tdb.database.db;
    const payments = await api(db, { scopes: ['payments:read'] });
    const both = await role(db, [
      { api: orders.identifier, scopes: ['orders:read'] },
      { api: payments.identifier, scopes: ['payments:read'] },
    ]);
    const multi = await serviceClient(db, [both.name]);
    const res = await token({}, multi);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_target',
      error_description: 'this client may call several APIs: name one with the resource parameter',
    });
    const named = await token({ resource: payments.identifier }, multi);
    expect(named.status).toBe(200);
    expect(named.body.scope).toBe('payments:read');
  });

  it('refuses a client with no role: invalid_target', async () => {
    const lonely = await serviceClient(tdb.database.db);
    const res = await token({}, lonely);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_target', error_description: 'this client is not granted any scope on any API' });
    const named = await token({ resource: orders.identifier }, lonely);
    expect(named.body).toEqual({
      error: 'invalid_target', error_description: 'this client is not granted any scope on this resource',
    });
  });

  it('answers 401 invalid_client for a wrong secret, an unknown client, and no credentials', async () => {
    const wrong = await token({}, { ...billing, secret: 'x'.repeat(43) });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    const unknown = await token({}, { id: 'nobody', secret: 'x' });
    expect(unknown.status).toBe(401);
    expect(unknown.body.error).toBe('invalid_client');
    const none = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' });
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: 'invalid_client', error_description: 'client authentication is required' });
  });

  it('refuses an unsupported or missing grant type with RFC 6749 errors', async () => {
    const password = await postForm(`${server.url}/token`, { grant_type: 'password', username: 'a', password: 'b' }, billing);
    expect(password.status).toBe(400);
    expect(password.body.error).toBe('unsupported_grant_type');
    const missing = await postForm(`${server.url}/token`, {}, billing);
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ error: 'invalid_request' });
  });

  it('answers 413 to an oversized body and 400 to a malformed one, never 500', async () => {
    const big = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&scope=${'a'.repeat(100_000)}`,
    });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: 'invalid_request' });

    for (const [type, body] of [
      ['application/json', '{"grant_type":'],
      ['application/x-www-form-urlencoded', '%%%&&&==='],
      ['text/plain', '\u0000\u0001'],
    ] as const) {
      const res = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': type }, body });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      const json = (await res.json()) as { error?: unknown };
      expect(json.error).toBeTypeOf('string');
    }
  });

  it('refuses a disabled client at once, and takes it back when enabled', async () => {
    const db = tdb.database.db;
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [reader.name]);
    expect((await token({}, svc)).status).toBe(200);
    await setClientEnabled(db, svc.id, false, NO_AUDIT);
    const refused = await token({}, svc);
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_client');
    await setClientEnabled(db, svc.id, true, NO_AUDIT);
    expect((await token({}, svc)).status).toBe(200);
    await deleteClient(db, svc.id, NO_AUDIT);
    expect((await token({}, svc)).status).toBe(401);
  });

  it('sees role changes at once', async () => {
    const db = tdb.database.db;
    const svc = await serviceClient(db);
    expect((await token({}, svc)).status).toBe(400);
    const admin = await role(db, [{ api: orders.identifier, scopes: ['orders:admin'] }]);
    await assignRoleToClient(db, admin.name, svc.id, NO_AUDIT);
    const res = await token({}, svc);
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('orders:admin');
  });

  it('keeps the old secret working during the overlap, then only the new one', async () => {
    const db = tdb.database.db;
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [reader.name]);
    const overlap = await rotateClientSecret(db, svc.id, 3600, NO_AUDIT);
    expect((await token({}, svc)).status).toBe(200);
    expect((await token({}, { ...svc, secret: overlap.clientSecret })).status).toBe(200);

    // A rotation whose overlap is already over: only the newest secret works.
    const past = new Date(Date.now() - 60_000);
    const final = await rotateClientSecret(db, svc.id, 30, NO_AUDIT, past);
    expect((await token({}, svc)).status).toBe(401);
    expect((await token({}, { ...svc, secret: overlap.clientSecret })).status).toBe(401);
    expect((await token({}, { ...svc, secret: final.clientSecret })).status).toBe(200);
  });

  it('signs with the algorithm and lifetime configured per API, or issues opaque tokens', async () => {
    const db = tdb.database.db;
    const rsa = await api(db, { scopes: ['r'], signingAlg: 'RS256', accessTokenTtl: 60 });
    const ed = await api(db, { scopes: ['e'], signingAlg: 'EdDSA' });
    const opaque = await api(db, { scopes: ['o'], tokenFormat: 'opaque' });
    const all = await role(db, [
      { api: rsa.identifier, scopes: ['r'] },
      { api: ed.identifier, scopes: ['e'] },
      { api: opaque.identifier, scopes: ['o'] },
    ]);
    const svc = await serviceClient(db, [all.name]);
    const r = await token({ resource: rsa.identifier }, svc);
    expect(decodeProtectedHeader(r.body.access_token).alg).toBe('RS256');
    expect(r.body.expires_in).toBe(60);
    const e = await token({ resource: ed.identifier }, svc);
    expect(decodeProtectedHeader(e.body.access_token).alg).toBe('EdDSA');
    const o = await token({ resource: opaque.identifier }, svc);
    expect(o.status).toBe(200);
    expect(o.body.access_token.split('.')).toHaveLength(1);

    await updateApi(db, rsa.identifier, { accessTokenTtl: 120 }, NO_AUDIT);
    expect((await token({ resource: rsa.identifier }, svc)).body.expires_in).toBe(120);
  });

  it('publishes discovery at both well-known addresses', async () => {
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status).toBe(200);
      const metadata = (await res.json()) as Record<string, unknown>;
      expect(metadata).toMatchObject({
        issuer: server.url,
        token_endpoint: `${server.url}/token`,
        jwks_uri: `${server.url}/jwks`,
      });
      expect(metadata.grant_types_supported).toContain('client_credentials');
      // `none` is for public sign-in apps (PKCE only); no secret-derived (HS*) method is offered.
      expect(metadata.token_endpoint_auth_methods_supported).toEqual([
      'client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none',
    ]);
      // Assertions only with asymmetric algorithms: HS* would need the plaintext secret.
      expect((metadata.token_endpoint_auth_signing_alg_values_supported as string[]).filter((alg) => /^HS|^none$/.test(alg))).toEqual([]);
      expect(metadata.introspection_endpoint).toBeTypeOf('string');
      expect(metadata.revocation_endpoint).toBeTypeOf('string');
    }
  });

  it('serves the provider under the issuer path when the issuer has one', async () => {
    const prefixed = await startServer(tdb.database, {}, '/auth');
    try {
      const origin = new URL(prefixed.url).origin;
      const discovery = await fetch(`${prefixed.url}/.well-known/openid-configuration`);
      expect(((await discovery.json()) as { token_endpoint: string }).token_endpoint).toBe(`${prefixed.url}/token`);
      const rfc8414 = await fetch(`${origin}/.well-known/oauth-authorization-server/auth`);
      expect(((await rfc8414.json()) as { issuer: string }).issuer).toBe(prefixed.url);
      const res = await postForm(`${prefixed.url}/token`, { grant_type: 'client_credentials' }, billing);
      expect(res.status).toBe(200);
      expect((await fetch(`${origin}/token`, { method: 'POST' })).status).toBe(404);
    } finally {
      await prefixed.close();
    }
  });

  it.skipIf(!onPostgres)('stays correct when its notification connection is cut', async () => {
    const db = tdb.database.db;
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [reader.name]);
    expect((await token({}, svc)).status).toBe(200); // now cached
    await sql`select pg_terminate_backend(pid) from pg_stat_activity
              where datname = current_database() and query like 'LISTEN%'`.execute(db);
    await setClientEnabled(db, svc.id, false, NO_AUDIT);
    expect((await token({}, svc)).status).toBe(401);
    // The feed comes back by itself, and caching with it.
    await expect.poll(async () => {
      const rows = await db.selectFrom('server_processes').select('id').execute();
      return rows.map((row) => row.id);
    }, { timeout: 5000 }).toContain(server.app.propagation.processId);
    await setClientEnabled(db, svc.id, true, NO_AUDIT);
    expect((await token({}, svc)).status).toBe(200);
  });

  it('builds every endpoint URL from ISSUER, whatever Host and forwarded headers say, with TRUST_PROXY or without', async () => {
    const forged = { host: 'evil.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'auth.evil.example', forwarded: 'host=evil.example;proto=https' };
    const proxied = await startServer(tdb.database, { TRUST_PROXY: 'true' });
    try {
      for (const target of [server, proxied]) {
        const issuer = new URL(target.url);
        for (const [path, headers] of [
          ['/.well-known/openid-configuration', forged],
          ['/.well-known/openid-configuration', { host: 'evil.example' }],
          ['/.well-known/openid-configuration', { 'x-forwarded-host': 'evil.example' }],
          // An absolute-form request target names a host of its own.
          ['http://evil.example/.well-known/openid-configuration', forged],
          [`http://evil.example:${issuer.port}/.well-known/oauth-authorization-server`, {}],
        ] as const) {
          const res = await rawGet(issuer, path, headers);
          expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(200);
          const doc = JSON.parse(res.body) as Record<string, unknown>;
          expect(doc.issuer).toBe(target.url);
          expect(doc.token_endpoint).toBe(`${target.url}/token`);
          expect(doc.jwks_uri).toBe(`${target.url}/jwks`);
          expect(res.body).not.toContain('evil');
        }
      }
    } finally {
      await proxied.close();
    }
  });
});

/** A GET over a raw socket request: fetch would not send a Host or request target of our choosing. */
function rawGet(issuer: URL, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: issuer.hostname, port: issuer.port, path, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}
