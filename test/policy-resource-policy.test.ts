// Which API a token is for and which scopes it carries (oidc/resource-policy.ts), through the
// provider itself: FAST_PATHS=false, so that plain client-credentials requests are not answered in
// front of it. Certificates come through a trusted proxy's header; DPoP proofs are real.
import { randomUUID } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateApi } from '../src/services/apis.ts';
import { updateClient } from '../src/services/clients.ts';
import { ungrantScopes, grantScopes } from '../src/services/roles.ts';
import { loadTlsMaterial } from '../src/platform/tls.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createAuthority, writePem, type Authority, type Issued } from './support/certificates.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { cleanUp, makeTempDir } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';
import { authorizeUrl, HttpBrowser, pkce } from './support/browser.ts';
import { CALLBACK, signIn, signInWorld, startAuthorization } from './support/sign-in.ts';

const HEADER = 'x-client-cert';

let tdb: TestDatabase;
let server: TestServer;
let ca: Authority;

interface DpopKey { privateKey: CryptoKey; publicJwk: JWK; nonce?: string }
interface Answer { status: number; body: any }
interface Caller { id: string; secret: string }

async function dpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, publicJwk: await exportJWK(publicKey) };
}

/** A token request with Basic credentials, a DPoP proof (retried once for a nonce) and a certificate when given. */
async function tokenRequest(caller: Caller, form: Record<string, string>, extras: { dpop?: DpopKey; cert?: Issued } = {}): Promise<Answer> {
  const url = `${server.url}/token`;
  const send = async (): Promise<Answer & { nonce: string | null }> => {
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(caller.id)}:${encodeURIComponent(caller.secret)}`).toString('base64')}`,
    };
    if (extras.dpop) {
      const { privateKey, publicJwk, nonce } = extras.dpop;
      headers.dpop = await new SignJWT({ htm: 'POST', htu: url, jti: randomUUID(), ...(nonce ? { nonce } : {}) })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: publicJwk }).setIssuedAt().sign(privateKey);
    }
    if (extras.cert) headers[HEADER] = encodeURIComponent(extras.cert.cert);
    const response = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(form).toString() });
    return { status: response.status, body: await response.json(), nonce: response.headers.get('dpop-nonce') };
  };
  const answer = await send();
  if (!extras.dpop || answer.body.error !== 'use_dpop_nonce') return answer;
  extras.dpop.nonce = answer.nonce!;
  return send();
}

const cc = (caller: Caller, form: Record<string, string> = {}, extras: { dpop?: DpopKey; cert?: Issued } = {}) =>
  tokenRequest(caller, { grant_type: 'client_credentials', ...form }, extras);

const sorted = (scope: string | undefined) => (scope ?? '').split(' ').sort();

beforeAll(async () => {
  tdb = await createTestDatabase();
  ca = await createAuthority();
  const caFile = writePem(makeTempDir('postern-resource-policy-'), 'ca.pem', ca.cert);
  server = await startServer(tdb.database, {
    FAST_PATHS: 'false', TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '127.0.0.1',
  }, '', { tls: loadTlsMaterial({ tls: undefined, mtls: { caFile, header: HEADER, proxies: [] } }) });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
  await cleanUp();
});

describe('client credentials: the scopes of the token', () => {
  it('are the granted ones when none is asked for, exactly the asked ones otherwise, on the API asked for', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read', 'orders:write', 'orders:admin'], signingAlg: 'EdDSA', accessTokenTtl: 77 });
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read', 'orders:write'] }]);
    const svc = await serviceClient(db, [reader.name]);

    const all = await cc(svc);
    expect(all.status, JSON.stringify(all.body)).toBe(200);
    expect(sorted(all.body.scope)).toEqual(['orders:read', 'orders:write']);
    expect(all.body.expires_in).toBe(77);
    const claims = decodeJwt(all.body.access_token);
    expect(sorted(claims.scope as string)).toEqual(['orders:read', 'orders:write']);
    expect(claims.aud).toBe(orders.identifier);
    expect(claims.exp! - claims.iat!).toBe(77);
    // Neither Postern's default (ES256) nor the provider's (RS256): the API's own algorithm.
    expect(decodeProtectedHeader(all.body.access_token)).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt' });

    for (const scope of ['orders:read', 'orders:write']) {
      const one = await cc(svc, { resource: orders.identifier, scope });
      expect(one.status, JSON.stringify(one.body)).toBe(200);
      expect(one.body.scope).toBe(scope);
      expect(decodeJwt(one.body.access_token).scope).toBe(scope);
    }
    const both = await cc(svc, { scope: 'orders:write orders:read' });
    expect(sorted(both.body.scope)).toEqual(['orders:read', 'orders:write']);
  });

  it('are refused, never narrowed, when one is not defined by the API or not granted', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read', 'orders:admin'] });
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [reader.name]);
    for (const [scope, description, offending] of [
      ['orders:read orders:admin', 'scope "orders:admin" is not granted to this client', 'orders:admin'],
      ['orders:admin orders:read', 'scope "orders:admin" is not granted to this client', 'orders:admin'],
      ['orders:read orders:delete', `scope "orders:delete" is not defined by ${orders.identifier}`, 'orders:delete'],
      ['orders:delete orders:admin', `scope "orders:delete" is not defined by ${orders.identifier}`, 'orders:delete'],
    ] as const) {
      const res = await cc(svc, { resource: orders.identifier, scope });
      expect(res.status, scope).toBe(400);
      // The refused scope is named in the answer, as RFC 6749 §5.2 allows (and oidc-provider adds).
      expect(res.body, scope).toEqual({ error: 'invalid_scope', error_description: description, scope: offending });
    }
  });

  it('come from the API named when the client may call several, each with its own grant', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read', 'orders:write'] });
    const payments = await api(db, { scopes: ['payments:read', 'payments:refund'], tokenFormat: 'opaque' });
    const both = await role(db, [
      { api: orders.identifier, scopes: ['orders:write'] },
      { api: payments.identifier, scopes: ['payments:read', 'payments:refund'] },
    ]);
    const svc = await serviceClient(db, [both.name]);
    const unnamed = await cc(svc);
    expect(unnamed.body).toEqual({
      error: 'invalid_target', error_description: 'this client may call several APIs: name one with the resource parameter',
    });
    const forOrders = await cc(svc, { resource: orders.identifier });
    expect(forOrders.body.scope).toBe('orders:write');
    expect(decodeJwt(forOrders.body.access_token).aud).toBe(orders.identifier);
    const forPayments = await cc(svc, { resource: payments.identifier });
    expect(forPayments.status, JSON.stringify(forPayments.body)).toBe(200);
    expect(sorted(forPayments.body.scope)).toEqual(['payments:read', 'payments:refund']);
    expect(forPayments.body.access_token.split('.')).toHaveLength(1);
    const crossed = await cc(svc, { resource: payments.identifier, scope: 'orders:write' });
    expect(crossed.body).toEqual({ error: 'invalid_scope', error_description: `scope "orders:write" is not defined by ${payments.identifier}`, scope: 'orders:write' });
  });

  it('are none for a client without a grant on the API: invalid_target, named or not', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read'] });
    const lonely = await serviceClient(db);
    expect((await cc(lonely)).body).toEqual({ error: 'invalid_target', error_description: 'this client is not granted any scope on any API' });
    expect((await cc(lonely, { resource: orders.identifier })).body).toEqual({
      error: 'invalid_target', error_description: 'this client is not granted any scope on this resource',
    });
    const elsewhere = await api(db, { scopes: ['x:read'] });
    const other = await role(db, [{ api: elsewhere.identifier, scopes: ['x:read'] }]);
    const svc = await serviceClient(db, [other.name]);
    expect((await cc(svc, { resource: orders.identifier })).body).toEqual({
      error: 'invalid_target', error_description: 'this client is not granted any scope on this resource',
    });
    expect((await cc(svc, { resource: 'https://unknown.example/' })).body).toEqual({ error: 'invalid_target', error_description: 'unknown resource' });
  });
});

describe('client credentials: DPoP and certificate binding', () => {
  it('an API that requires DPoP: refused without a proof, a DPoP token with one', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read'], requireDpop: true });
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [reader.name]);
    expect((await cc(svc)).body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this resource (RFC 9449)' });
    const bound = await cc(svc, {}, { dpop: await dpopKey() });
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    expect(bound.body.token_type).toBe('DPoP');
  });

  it('a client that requires DPoP: refused without a proof, a DPoP token with one; other clients get Bearer', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read'] });
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [reader.name]);
    const plain = await cc(svc);
    expect(plain.status).toBe(200);
    expect(plain.body.token_type).toBe('Bearer');
    await updateClient(db, svc.id, { requireDpop: true }, NO_AUDIT);
    expect((await cc(svc)).body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this client (RFC 9449)' });
    const bound = await cc(svc, {}, { dpop: await dpopKey() });
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    expect(bound.body.token_type).toBe('DPoP');
  });

  it('an API that requires certificate-bound tokens: only for a client registered for them, with its certificate', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read'], requireMtls: true });
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [reader.name]);
    const cert = await ca.issue('CN=svc,O=Example');
    const unbound = { error: 'invalid_request', error_description: 'tokens for this resource must be bound to a client certificate (RFC 8705), and this client is not registered for certificate-bound tokens' };
    expect((await cc(svc)).body).toEqual(unbound);
    expect((await cc(svc, {}, { cert })).body).toEqual(unbound);
    await updateClient(db, svc.id, { requireMtls: true }, NO_AUDIT);
    expect((await cc(svc)).body).toEqual({ error: 'invalid_request', error_description: 'a client certificate is required for this resource (RFC 8705)' });
    const bound = await cc(svc, {}, { cert });
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    expect(decodeJwt(bound.body.access_token).cnf).toEqual({ 'x5t#S256': cert.thumbprint });
  });

  it('a client registered for certificate-bound tokens: refused without its certificate on any API, bound with it', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read'] });
    const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [reader.name]);
    const cert = await ca.issue('CN=svc,O=Example');
    const plain = await cc(svc, {}, { cert });
    expect(plain.status).toBe(200);
    expect(decodeJwt(plain.body.access_token).cnf).toBeUndefined();
    await updateClient(db, svc.id, { requireMtls: true }, NO_AUDIT);
    expect((await cc(svc)).body).toEqual({ error: 'invalid_request', error_description: 'a client certificate is required for this client (RFC 8705)' });
    const bound = await cc(svc, {}, { cert });
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    expect(decodeJwt(bound.body.access_token).cnf).toEqual({ 'x5t#S256': cert.thumbprint });
  });
});

describe('a person\'s tokens', () => {
  it('carry what the roles grant at the exchange and at each refresh, not what was consented to', async () => {
    const db = tdb.database.db;
    const world = await signInWorld(db);
    await grantScopes(db, world.role.name, { api: world.api.identifier, scopes: ['orders:write'] }, NO_AUDIT);
    const flow = await signIn(server.url, world);
    await ungrantScopes(db, world.role.name, { api: world.api.identifier, scopes: ['orders:write'] }, NO_AUDIT);
    const form = { grant_type: 'authorization_code', code: flow.code, code_verifier: flow.verifier, redirect_uri: CALLBACK };
    const tokens = await tokenRequest(world.client, { ...form, resource: world.api.identifier });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const claims = decodeJwt(tokens.body.access_token);
    expect(claims.aud).toBe(world.api.identifier);
    expect(claims.scope).toBe('orders:read');

    // Granted again: the next token has it; taken away: the one after has nothing on the API.
    await grantScopes(db, world.role.name, { api: world.api.identifier, scopes: ['orders:write'] }, NO_AUDIT);
    const again = await tokenRequest(world.client, { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token, resource: world.api.identifier });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(sorted(decodeJwt(again.body.access_token).scope as string)).toEqual(['orders:read', 'orders:write']);
    await ungrantScopes(db, world.role.name, { api: world.api.identifier, scopes: ['orders:read', 'orders:write'] }, NO_AUDIT);
    const none = await tokenRequest(world.client, { grant_type: 'refresh_token', refresh_token: again.body.refresh_token, resource: world.api.identifier });
    expect(none.status, JSON.stringify(none.body)).toBe(200);
    expect(decodeJwt(none.body.access_token).scope).toBeUndefined();
  });

  it('without a resource: a token for userinfo, not for the API the sign-in named', async () => {
    const world = await signInWorld(tdb.database.db);
    const flow = await signIn(server.url, world);
    const tokens = await tokenRequest(world.client, { grant_type: 'authorization_code', code: flow.code, code_verifier: flow.verifier, redirect_uri: CALLBACK });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.access_token.split('.')).toHaveLength(1);
    const userinfo = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${tokens.body.access_token}` } });
    expect(userinfo.status).toBe(200);
    expect(((await userinfo.json()) as { sub: string }).sub).toBe(world.user.id);
  });

  it('the sign-in itself names an API that requires DPoP or certificates, or none: no proof is asked for there', async () => {
    const db = tdb.database.db;
    for (const binding of [{ requireDpop: true }, { requireMtls: true }]) {
      const world = await signInWorld(db);
      await updateApi(db, world.api.id, binding, NO_AUDIT);
      const named = await startAuthorization(server.url, world);
      expect(named.page.status, JSON.stringify(binding)).toBe(200);
      expect(named.page.html).toContain('Sign in');
    }
    const world = await signInWorld(db);
    const { challenge } = pkce();
    const url = new URL(authorizeUrl(server.url, {
      client_id: world.client.id, response_type: 'code', redirect_uri: CALLBACK, scope: 'openid profile',
      state: 'unnamed', code_challenge: challenge, code_challenge_method: 'S256',
    }));
    const unnamed = await new HttpBrowser().get(url.href, CALLBACK);
    expect(unnamed.status).toBe(200);
    expect(unnamed.html).toContain('Sign in');
  });
});
