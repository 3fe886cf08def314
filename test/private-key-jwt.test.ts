// private_key_jwt (RFC 7523 §2.2): clients that sign client assertions with their own keys,
// registered as a JWK Set or a jwks_uri, driven end to end with oauth4webapi over real HTTP.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, getClient, rotateClientSecret, setClientEnabled, updateClient } from '../src/services/clients.ts';
import { adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, unique } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

const insecure = { [oauth.allowInsecureRequests]: true } as const;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let tdb: TestDatabase;
let server: TestServer;
let as: oauth.AuthorizationServer;
let orders: Awaited<ReturnType<typeof api>>;
let reader: Awaited<ReturnType<typeof role>>;
let jwksServer: http.Server;
let served: { keys: unknown[] } = { keys: [] };
let jwksFetches = 0;
let jwksUrl: string;

async function keyPair(alg: string, kid = unique('kid')) {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  // oauth4webapi signs with Ed25519 keys as alg "Ed25519" (RFC 9864), so that is what is registered.
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: alg === 'EdDSA' ? 'Ed25519' : alg, use: 'sig' };
  return { privateKey, jwk, kid };
}

async function tokenWith(clientId: string, auth: oauth.ClientAuth, parameters: Record<string, string> = {}) {
  const client = { client_id: clientId };
  const response = await oauth.clientCredentialsGrantRequest(as, client, auth, { resource: orders.identifier, ...parameters }, insecure);
  return oauth.processClientCredentialsResponse(as, client, response);
}

/** A client assertion signed by hand, for the cases a well-behaved library never produces. */
async function assertion(clientId: string, key: CryptoKey, alg: string, claims: Record<string, unknown> = {}) {
  return new SignJWT({ jti: unique('jti'), ...claims })
    .setProtectedHeader({ alg })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(server.url)
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(key);
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const db = tdb.database.db;
  orders = await api(db, { scopes: ['orders:read'] });
  reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
  as = await oauth.processDiscoveryResponse(new URL(server.url), await oauth.discoveryRequest(new URL(server.url), insecure));
  jwksServer = http.createServer((_req, res) => {
    jwksFetches += 1;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(served));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
});

afterAll(async () => {
  await server?.close();
  jwksServer?.closeAllConnections();
  await new Promise((resolve) => jwksServer?.close(resolve));
  await tdb?.drop();
});

describe('private_key_jwt with keys registered as a JWK Set', () => {
  it('advertises private_key_jwt and only asymmetric algorithms in discovery', () => {
    expect(as.token_endpoint_auth_methods_supported).toEqual([
      'client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none',
    ]);
    const algs = as.token_endpoint_auth_signing_alg_values_supported!;
    expect(algs).toContain('ES256');
    expect(algs.filter((alg) => alg.startsWith('HS') || alg === 'none')).toEqual([]);
  });

  it('creates the client without a secret and issues tokens for a signed assertion (ES256)', async () => {
    const { privateKey, jwk } = await keyPair('ES256');
    const created = await createClient(tdb.database.db, { name: unique('pkj'), roles: [reader.name], jwks: { keys: [jwk] } }, NO_AUDIT);
    expect(created.clientSecret).toBeNull();
    expect(created.client.tokenEndpointAuthMethod).toBe('private_key_jwt');
    expect(created.client.secrets).toEqual([]);
    expect(created.client.jwks).toEqual({ keys: [jwk] });

    const tokens = await tokenWith(created.client.clientId, oauth.PrivateKeyJwt(privateKey));
    expect(tokens.scope).toBe('orders:read');
    const claims = await oauth.validateJwtAccessToken(
      as, new Request(orders.identifier, { headers: { authorization: `Bearer ${tokens.access_token}` } }), orders.identifier, insecure,
    );
    expect(claims.client_id).toBe(created.client.clientId);

    // The same client authenticates the same way at introspection and revocation.
    const client = { client_id: created.client.clientId };
    const auth = oauth.PrivateKeyJwt(privateKey);
    const introspected = await oauth.processIntrospectionResponse(as, client,
      await oauth.introspectionRequest(as, client, auth, tokens.access_token, insecure));
    expect(introspected).toMatchObject({ active: true, client_id: created.client.clientId });
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, tokens.access_token, insecure));
    const after = await oauth.processIntrospectionResponse(as, client,
      await oauth.introspectionRequest(as, client, auth, tokens.access_token, insecure));
    expect(after).toEqual({ active: false });
  });

  it('works with EdDSA and RSA-PSS keys too', async () => {
    for (const alg of ['EdDSA', 'PS256']) {
      const { privateKey, jwk } = await keyPair(alg);
      const { client } = await createClient(tdb.database.db, { name: unique('pkj'), roles: [reader.name], jwks: { keys: [jwk] } }, NO_AUDIT);
      await expect(tokenWith(client.clientId, oauth.PrivateKeyJwt(privateKey))).resolves.toMatchObject({ token_type: 'bearer' });
    }
  });

  it('refuses an assertion signed by another key, a replayed one, and a secret: 401 invalid_client', async () => {
    const { privateKey, jwk } = await keyPair('ES256');
    const stranger = await keyPair('ES256');
    const { client } = await createClient(tdb.database.db, { name: unique('pkj'), roles: [reader.name], jwks: { keys: [jwk] } }, NO_AUDIT);
    const form = (clientAssertion: string) => ({
      grant_type: 'client_credentials', resource: orders.identifier,
      client_assertion_type: ASSERTION_TYPE, client_assertion: clientAssertion,
    });

    const forged = await postForm(`${server.url}/token`, form(await assertion(client.clientId, stranger.privateKey, 'ES256')));
    expect(forged.status).toBe(401);
    expect(forged.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });

    // RFC 7523 §3: the jti may be used once; the provider remembers it in the database.
    const once = await assertion(client.clientId, privateKey, 'ES256');
    expect((await postForm(`${server.url}/token`, form(once))).status).toBe(200);
    const replay = await postForm(`${server.url}/token`, form(once));
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('invalid_client');

    const withSecret = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, { id: client.clientId, secret: 'x'.repeat(43) });
    expect(withSecret.status).toBe(401);
    expect(withSecret.body.error).toBe('invalid_client');
  });

  it('refuses a disabled client with a valid assertion: 401 invalid_client (no secret check hides it)', async () => {
    const { privateKey, jwk } = await keyPair('ES256');
    const { client } = await createClient(tdb.database.db, { name: unique('pkj'), roles: [reader.name], jwks: { keys: [jwk] } }, NO_AUDIT);
    const request = async () => postForm(`${server.url}/token`, {
      grant_type: 'client_credentials', resource: orders.identifier,
      client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(client.clientId, privateKey, 'ES256'),
    });
    expect((await request()).status).toBe(200);
    await setClientEnabled(tdb.database.db, client.clientId, false, NO_AUDIT);
    const refused = await request();
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
  });

  it('lets exactly one of several parallel requests with one assertion through', async () => {
    const { privateKey, jwk } = await keyPair('ES256');
    const { client } = await createClient(tdb.database.db, { name: unique('pkj'), roles: [reader.name], jwks: { keys: [jwk] } }, NO_AUDIT);
    const once = await assertion(client.clientId, privateKey, 'ES256');
    const answers = await Promise.all(Array.from({ length: 8 }, () => postForm(`${server.url}/token`, {
      grant_type: 'client_credentials', resource: orders.identifier, client_assertion_type: ASSERTION_TYPE, client_assertion: once,
    })));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 401, 401, 401, 401, 401, 401, 401]);
  });

  it('refuses an assertion with an HMAC algorithm or without expiry', async () => {
    const { privateKey, jwk } = await keyPair('ES256');
    const { client } = await createClient(tdb.database.db, { name: unique('pkj'), roles: [reader.name], jwks: { keys: [jwk] } }, NO_AUDIT);
    const hmac = await assertion(client.clientId, new TextEncoder().encode('x'.repeat(32)) as never, 'HS256');
    const noExp = await new SignJWT({ jti: unique('jti') }).setProtectedHeader({ alg: 'ES256' })
      .setIssuer(client.clientId).setSubject(client.clientId).setAudience(server.url).setIssuedAt().sign(privateKey);
    for (const clientAssertion of [hmac, noExp]) {
      const res = await postForm(`${server.url}/token`, {
        grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: clientAssertion,
      });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    }
  });

  it('takes new keys at once after an update (key rotation by the client)', async () => {
    const first = await keyPair('ES256');
    const second = await keyPair('ES256');
    const { client } = await createClient(tdb.database.db, { name: unique('pkj'), roles: [reader.name], jwks: { keys: [first.jwk] } }, NO_AUDIT);
    await expect(tokenWith(client.clientId, oauth.PrivateKeyJwt(first.privateKey))).resolves.toBeDefined();
    await updateClient(tdb.database.db, client.clientId, { jwks: { keys: [second.jwk] } }, NO_AUDIT);
    await expect(tokenWith(client.clientId, oauth.PrivateKeyJwt(second.privateKey))).resolves.toBeDefined();
    await expect(tokenWith(client.clientId, oauth.PrivateKeyJwt(first.privateKey))).rejects.toBeInstanceOf(oauth.ResponseBodyError);
  });
});

describe('private_key_jwt with a jwks_uri', () => {
  it('fetches the keys from the URL, accepts each key published there and nothing else', async () => {
    const first = await keyPair('ES256');
    const second = await keyPair('ES256');
    const unpublished = await keyPair('ES256');
    // A client rotating keys publishes the next one ahead of using it (the provider keeps a fetched
    // set for at least 60 seconds, longer if Cache-Control max-age says so).
    served = { keys: [first.jwk, second.jwk] };
    const { client } = await createClient(tdb.database.db, { name: unique('pkj'), roles: [reader.name], jwksUri: jwksUrl }, NO_AUDIT);
    expect(client.jwksUri).toBe(jwksUrl);
    const before = jwksFetches;
    for (const key of [first, second]) {
      await expect(tokenWith(client.clientId, oauth.PrivateKeyJwt({ key: key.privateKey, kid: key.kid })))
        .resolves.toMatchObject({ scope: 'orders:read' });
    }
    expect(jwksFetches).toBeGreaterThan(before);
    const refused = await tokenWith(client.clientId, oauth.PrivateKeyJwt({ key: unpublished.privateKey, kid: unpublished.kid }))
      .catch((error: unknown) => error);
    expect(refused).toMatchObject({ status: 401, error: 'invalid_client' });
  });
});

describe('registering private_key_jwt clients', () => {
  const db = () => tdb.database.db;

  it.each([
    ['a private key', async () => ({ keys: [await exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey)] })],
    ['a symmetric key', async () => ({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] })],
    ['an HMAC algorithm', async () => ({ keys: [{ ...(await keyPair('ES256')).jwk, alg: 'HS256' }] })],
    ['no keys', async () => ({ keys: [] })],
    ['not a JWK Set', async () => [{ kty: 'EC' }]],
  ])('refuses %s', async (_what, make) => {
    await expect(createClient(db(), { name: unique('bad'), jwks: await make() }, NO_AUDIT)).rejects.toMatchObject({ code: 'invalid_input' });
  });

  it('needs exactly one of jwks and jwksUri, https for a non-loopback URL, and keys only for private_key_jwt', async () => {
    const { jwk } = await keyPair('ES256');
    await expect(createClient(db(), { name: unique('bad'), tokenEndpointAuthMethod: 'private_key_jwt' }, NO_AUDIT))
      .rejects.toThrow('exactly one of jwks');
    await expect(createClient(db(), { name: unique('bad'), jwks: { keys: [jwk] }, jwksUri: jwksUrl }, NO_AUDIT))
      .rejects.toThrow('exactly one of jwks');
    await expect(createClient(db(), { name: unique('bad'), jwksUri: 'http://keys.example.com/jwks' }, NO_AUDIT))
      .rejects.toThrow('must use https');
    await expect(createClient(db(), { name: unique('bad'), tokenEndpointAuthMethod: 'client_secret_basic', jwks: { keys: [jwk] } }, NO_AUDIT))
      .rejects.toThrow('for private_key_jwt clients');
  });

  it('has no secret to rotate', async () => {
    const { jwk } = await keyPair('ES256');
    const { client } = await createClient(db(), { name: unique('pkj'), jwks: { keys: [jwk] } }, NO_AUDIT);
    await expect(rotateClientSecret(db(), client.clientId, 0, NO_AUDIT)).rejects.toThrow('has no secret');
    expect((await getClient(db(), client.clientId)).secrets).toEqual([]);
  });

  it('is available through the admin API, returning no secret', async () => {
    const admin = await adminClient(db());
    const call = adminClientFor(new URL(server.url).origin, await tokenFor(server.url, admin));
    const { jwk } = await keyPair('ES256');
    const created = await call('POST', '/clients', { name: unique('pkj'), jwks: { keys: [jwk] }, allowedNetworks: ['10.0.0.0/8'] });
    expect(created.status).toBe(201);
    expect(created.body.clientSecret).toBeNull();
    expect(created.body.client).toMatchObject({
      tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [jwk] }, jwksUri: null, allowedNetworks: ['10.0.0.0/8'], secrets: [],
    });
    const bad = await call('POST', '/clients', { name: unique('pkj'), jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_input');
    const patched = await call('PATCH', `/clients/${created.body.client.clientId}`, { jwksUri: jwksUrl });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ jwks: null, jwksUri: jwksUrl });
  });
});
