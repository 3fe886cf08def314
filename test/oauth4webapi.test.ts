// Postern driven by an independent, certified OAuth client library (oauth4webapi): discovery at
// both well-known addresses, client credentials, RFC 9068 JWT validation as a resource server
// would do it, introspection (RFC 7662) and revocation (RFC 7009), for JWT and opaque tokens.
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { startServer, type TestServer } from './support/server.ts';

// http://127.0.0.1 in tests; oauth4webapi refuses plain http unless told otherwise.
const insecure = { [oauth.allowInsecureRequests]: true } as const;

let tdb: TestDatabase;
let server: TestServer;
let issuer: URL;
let as: oauth.AuthorizationServer;
let orders: Awaited<ReturnType<typeof api>>;
let ledger: Awaited<ReturnType<typeof api>>;
let billing: Awaited<ReturnType<typeof serviceClient>>;
let clerk: Awaited<ReturnType<typeof role>>;
let client: oauth.Client;
let auth: oauth.ClientAuth;

async function clientCredentials(parameters: Record<string, string>): Promise<oauth.TokenEndpointResponse> {
  const response = await oauth.clientCredentialsGrantRequest(as, client, auth, parameters, insecure);
  return oauth.processClientCredentialsResponse(as, client, response);
}

async function introspect(token: string): Promise<oauth.IntrospectionResponse> {
  const response = await oauth.introspectionRequest(as, client, auth, token, insecure);
  return oauth.processIntrospectionResponse(as, client, response);
}

async function revoke(token: string): Promise<undefined> {
  const response = await oauth.revocationRequest(as, client, auth, token, insecure);
  return oauth.processRevocationResponse(response);
}

/** What a resource server does with a bearer token: RFC 6750 header, RFC 9068 checks, /jwks. */
function validateAtResourceServer(token: string, audience: string) {
  const request = new Request(`${audience}/orders`, { headers: { authorization: `Bearer ${token}` } });
  return oauth.validateJwtAccessToken(as, request, audience, insecure);
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  issuer = new URL(server.url);
  const db = tdb.database.db;
  orders = await api(db, { scopes: ['orders:read', 'orders:write', 'orders:admin'] });
  ledger = await api(db, { scopes: ['ledger:read', 'ledger:write'], tokenFormat: 'opaque' });
  clerk = await role(db, [
    { api: orders.identifier, scopes: ['orders:read', 'orders:write'] },
    { api: ledger.identifier, scopes: ['ledger:read', 'ledger:write'] },
  ]);
  billing = await serviceClient(db, [clerk.name]);

  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
  client = { client_id: billing.id };
  auth = oauth.ClientSecretBasic(billing.secret);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('discovery with oauth4webapi', () => {
  it('accepts the OpenID Connect discovery document (default algorithm)', async () => {
    const response = await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' });
    expect(response.url).toBe(`${server.url}/.well-known/openid-configuration`);
    const metadata = await oauth.processDiscoveryResponse(issuer, response);
    expect(metadata.issuer).toBe(server.url);
    expect(metadata).toMatchObject({
      token_endpoint: `${server.url}/token`,
      jwks_uri: `${server.url}/jwks`,
      introspection_endpoint: `${server.url}/token/introspection`,
      revocation_endpoint: `${server.url}/token/revocation`,
    });
    expect(metadata.grant_types_supported).toContain('client_credentials');
  });

  it('accepts the RFC 8414 authorization server metadata (oauth2 algorithm), identical to the OIDC one', async () => {
    const response = await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oauth2' });
    expect(response.url).toBe(`${server.url}/.well-known/oauth-authorization-server`);
    const metadata = await oauth.processDiscoveryResponse(issuer, response);
    expect(metadata).toEqual(as);
  });

  it('rejects the metadata when another issuer is expected (issuer mix-up defence works)', async () => {
    const other = new URL('http://127.0.0.2:1');
    const response = await oauth.discoveryRequest(issuer, insecure);
    await expect(oauth.processDiscoveryResponse(other, response)).rejects.toMatchObject({
      code: oauth.JSON_ATTRIBUTE_COMPARISON,
    });
  });
});

describe('JWT access tokens with oauth4webapi', () => {
  it('gets a token, validates it as a resource server, introspects, revokes, introspects again', async () => {
    const tokens = await clientCredentials({ resource: orders.identifier, scope: 'orders:read' });
    expect(tokens.token_type).toBe('bearer'); // oauth4webapi lower-cases it
    expect(tokens.scope).toBe('orders:read');
    expect(tokens.expires_in).toBe(300);
    expect(tokens.refresh_token).toBeUndefined();

    // RFC 9068 validation by the library: typ at+jwt, iss, aud, exp, signature from jwks_uri.
    const claims = await validateAtResourceServer(tokens.access_token, orders.identifier);
    expect(claims).toMatchObject({
      iss: server.url,
      aud: orders.identifier,
      sub: billing.id,
      client_id: billing.id,
      scope: 'orders:read',
    });
    expect(claims.jti).toBeTypeOf('string');
    expect(claims.exp - claims.iat).toBe(300);

    const active = await introspect(tokens.access_token);
    expect(active).toMatchObject({
      active: true,
      scope: 'orders:read',
      client_id: billing.id,
      sub: billing.id,
      aud: orders.identifier,
      iss: server.url,
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      token_type: 'Bearer',
    });
    expect(claims.roles).toEqual([clerk.name]);
    expect(active.roles).toEqual([clerk.name]);

    await expect(revoke(tokens.access_token)).resolves.toBeUndefined();
    expect(await introspect(tokens.access_token)).toEqual({ active: false });
    // Revoking again is not an error (RFC 7009 §2.2).
    await expect(revoke(tokens.access_token)).resolves.toBeUndefined();
  });

  it('grants the whole granted set when no scope is asked for', async () => {
    const tokens = await clientCredentials({ resource: orders.identifier });
    expect(tokens.scope?.split(' ').sort()).toEqual(['orders:read', 'orders:write']);
    const claims = await validateAtResourceServer(tokens.access_token, orders.identifier);
    expect(String(claims.scope).split(' ').sort()).toEqual(['orders:read', 'orders:write']);
  });

  it('is refused by a resource server that expects another audience', async () => {
    const tokens = await clientCredentials({ resource: orders.identifier, scope: 'orders:read' });
    await expect(validateAtResourceServer(tokens.access_token, ledger.identifier)).rejects.toMatchObject({
      code: oauth.JWT_CLAIM_COMPARISON,
    });
  });

  it('reports invalid_scope as a ResponseBodyError', async () => {
    const response = await oauth.clientCredentialsGrantRequest(
      as, client, auth, { resource: orders.identifier, scope: 'orders:read orders:admin' }, insecure,
    );
    const error = await oauth.processClientCredentialsResponse(as, client, response).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    const body = error as oauth.ResponseBodyError;
    expect(body.code).toBe(oauth.RESPONSE_BODY_ERROR);
    expect(body.status).toBe(400);
    expect(body.error).toBe('invalid_scope');
    expect(body.error_description).toBe('scope "orders:admin" is not granted to this client');
  });

  it('reports a scope the API does not define as invalid_scope too', async () => {
    const error = await clientCredentials({ resource: orders.identifier, scope: 'payments:read' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    expect((error as oauth.ResponseBodyError).error).toBe('invalid_scope');
  });

  it('reports wrong client credentials as a 401 invalid_client error', async () => {
    const wrong = oauth.ClientSecretBasic('x'.repeat(43));
    const response = await oauth.clientCredentialsGrantRequest(as, client, wrong, { resource: orders.identifier }, insecure);
    const error = await oauth.processClientCredentialsResponse(as, client, response).catch((e: unknown) => e);
    // RFC 6749 §5.2: Basic authentication failed, so the 401 carries a WWW-Authenticate challenge,
    // which oauth4webapi reports ahead of the JSON body.
    expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    const challenge = error as oauth.WWWAuthenticateChallengeError;
    expect(challenge.code).toBe(oauth.WWW_AUTHENTICATE_CHALLENGE);
    expect(challenge.status).toBe(401);
    expect(challenge.cause[0]).toMatchObject({ scheme: 'basic', parameters: { error: 'invalid_client' } });
    expect(await challenge.response.json()).toMatchObject({ error: 'invalid_client' });
  });
});

describe('opaque access tokens with oauth4webapi', () => {
  it('gets a token, introspects, revokes, introspects again', async () => {
    const tokens = await clientCredentials({ resource: ledger.identifier, scope: 'ledger:read' });
    expect(tokens.token_type).toBe('bearer');
    expect(tokens.scope).toBe('ledger:read');
    expect(tokens.access_token.split('.')).toHaveLength(1);
    // Not a JWT: a resource server must introspect it.
    await expect(validateAtResourceServer(tokens.access_token, ledger.identifier)).rejects.toThrow();

    const before = Math.floor(Date.now() / 1000);
    const active = await introspect(tokens.access_token);
    expect(active).toMatchObject({
      active: true,
      scope: 'ledger:read',
      client_id: billing.id,
      aud: ledger.identifier,
      iss: server.url,
      token_type: 'Bearer',
    });
    expect(active.iat).toBeGreaterThanOrEqual(before - 5);
    expect(active.exp! - active.iat!).toBe(300);
    expect(active.roles).toEqual([clerk.name]);
    // The token is its own id: the answer must not echo it back (oidc-provider leaves jti out).
    expect(active.jti).not.toBe(tokens.access_token);

    await expect(revoke(tokens.access_token)).resolves.toBeUndefined();
    expect(await introspect(tokens.access_token)).toEqual({ active: false });
  });

  it('introspects with the same subject as a JWT of the same client (sub = client_id, RFC 9068 §2.2)', async () => {
    const jwt = await introspect((await clientCredentials({ resource: orders.identifier })).access_token);
    const opaque = await introspect((await clientCredentials({ resource: ledger.identifier })).access_token);
    expect(jwt.sub).toBe(billing.id);
    // A resource server that moves from JWT to opaque tokens (or back) must see the same caller.
    expect(opaque.sub).toBe(jwt.sub);
  });

  it('reports invalid_scope as a ResponseBodyError', async () => {
    const error = await clientCredentials({ resource: ledger.identifier, scope: 'ledger:admin' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    expect((error as oauth.ResponseBodyError).error).toBe('invalid_scope');
    expect((error as oauth.ResponseBodyError).status).toBe(400);
  });
});
