// Introspection (RFC 7662) and revocation (RFC 7009) of JWT and opaque access tokens and of
// refresh tokens, and who may introspect what.
import { SignJWT, decodeJwt, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateApi } from '../src/services/apis.ts';
import { deleteClient, setClientEnabled } from '../src/services/clients.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { CALLBACK, signIn, signInWorld } from './support/sign-in.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

type Credentials = { id: string; secret: string };

let tdb: TestDatabase;
let server: TestServer;
let orders: Awaited<ReturnType<typeof api>>;
let ledger: Awaited<ReturnType<typeof api>>;
let billing: Credentials;
let shipping: Credentials;
let gateway: Credentials;
let auditor: Credentials;

const issue = async (client: Credentials, resource: string) => {
  const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource }, client);
  expect(res.status).toBe(200);
  return res.body.access_token as string;
};
const introspect = (token: string, caller?: Credentials, extra: Record<string, string> = {}) =>
  postForm(`${server.url}/token/introspection`, { token, ...extra }, caller);
const revoke = (token: string, caller?: Credentials, extra: Record<string, string> = {}) =>
  postForm(`${server.url}/token/revocation`, { token, ...extra }, caller);

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const db = tdb.database.db;
  orders = await api(db, { scopes: ['orders:read'] });
  ledger = await api(db, { scopes: ['ledger:read'], tokenFormat: 'opaque' });
  const reader = await role(db, [
    { api: orders.identifier, scopes: ['orders:read'] },
    { api: ledger.identifier, scopes: ['ledger:read'] },
  ]);
  billing = await serviceClient(db, [reader.name]);
  shipping = await serviceClient(db, [reader.name]);
  // The gateway in front of the orders API introspects every token issued for it.
  gateway = await serviceClient(db);
  await updateApi(db, orders.identifier, { introspectionClient: gateway.id }, NO_AUDIT);
  // An auditor holds Postern's own `introspect` permission: every token.
  const introspector = await role(db, [{ api: 'urn:postern', scopes: ['introspect'] }]);
  auditor = await serviceClient(db, [introspector.name]);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('introspection of JWT access tokens', () => {
  it('answers every RFC 7662 field for the client that owns the token', async () => {
    const token = await issue(billing, orders.identifier);
    const claims = decodeJwt(token);
    const res = await introspect(token, billing);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({
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
      roles: claims.roles,
    });
  });

  it('follows the policy: owner, the API introspection client and the introspect permission see it; others get active false', async () => {
    const token = await issue(billing, orders.identifier);
    expect((await introspect(token, gateway)).body.active).toBe(true);
    expect((await introspect(token, auditor)).body.active).toBe(true);
    expect((await introspect(token, shipping)).body).toEqual({ active: false });
  });

  it('refuses callers without valid client authentication with 401', async () => {
    const token = await issue(billing, orders.identifier);
    const none = await introspect(token);
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: 'invalid_client', error_description: 'client authentication is required' });
    const wrong = await introspect(token, { id: billing.id, secret: 'wrong' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
  });

  it('says active false for a tampered, foreign, expired or malformed token', async () => {
    const token = await issue(billing, orders.identifier);
    const [h, p, s] = token.split('.');
    // One signature character changed, always to another one.
    const tampered = `${h}.${p}.${s!.slice(0, 10)}${s![10] === 'A' ? 'B' : 'A'}${s!.slice(11)}`;
    expect((await introspect(tampered, billing)).body).toEqual({ active: false });

    const { privateKey } = await generateKeyPair('ES256');
    const foreign = await new SignJWT({ client_id: billing.id, scope: 'orders:read' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
      .setIssuer(server.url).setJti('foreign').setIssuedAt().setExpirationTime('5m')
      .sign(privateKey);
    expect((await introspect(foreign, billing)).body).toEqual({ active: false });

    for (const junk of ['not-a-token', 'a.b.c', `${h}.e30.`, 'x'.repeat(4000)]) {
      const res = await introspect(junk, billing);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ active: false });
    }
  });

  it('says active false once the token has expired', async () => {
    const db = tdb.database.db;
    // Two seconds: exp is counted from iat in whole seconds, so a one-second token issued late in
    // a second may have expired by the first introspection on a slow machine.
    const brief = await api(db, { scopes: ['brief'], accessTokenTtl: 2 });
    const r = await role(db, [{ api: brief.identifier, scopes: ['brief'] }]);
    const svc = await serviceClient(db, [r.name]);
    const token = await issue(svc, brief.identifier);
    expect((await introspect(token, svc)).body.active).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 3100));
    expect((await introspect(token, svc)).body).toEqual({ active: false });
  });

  it('says active false once the client is disabled or deleted, and still once it is enabled again', async () => {
    const db = tdb.database.db;
    const r = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const svc = await serviceClient(db, [r.name]);
    const token = await issue(svc, orders.identifier);
    await setClientEnabled(db, svc.id, false, NO_AUDIT);
    expect((await introspect(token, auditor)).body).toEqual({ active: false });
    // Disabling revoked it: enabling the client does not bring it back (docs/cli.md).
    await setClientEnabled(db, svc.id, true, NO_AUDIT);
    expect((await introspect(token, auditor)).body).toEqual({ active: false });
    const later = await issue(svc, orders.identifier);
    await deleteClient(db, svc.id, NO_AUDIT);
    expect((await introspect(later, auditor)).body).toEqual({ active: false });
  });
});

describe('the direct path for JWT introspection', () => {
  it('answers a plain JWT introspection without the provider refusing it first', async () => {
    const token = await issue(billing, orders.identifier);
    const refusals: unknown[] = [];
    const onError = (_ctx: unknown, error: unknown) => refusals.push(error);
    server.app.provider.on('introspection.error', onError);
    try {
      expect((await introspect(token, billing)).body.active).toBe(true);
      // client_secret_post works the same way.
      const post = await postForm(`${server.url}/token/introspection`, {
        token, client_id: billing.id, client_secret: billing.secret,
      });
      expect(post.body.active).toBe(true);
      expect(refusals).toEqual([]);
    } finally {
      server.app.provider.off('introspection.error', onError);
    }
  });

  it('leaves anything unusual to the provider, body intact', async () => {
    const token = await issue(billing, orders.identifier);
    const basic = `Basic ${Buffer.from(`${billing.id}:${billing.secret}`).toString('base64')}`;
    const send = (body: string, authorization?: string) => fetch(`${server.url}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
      body,
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as Record<string, unknown> }));

    const duplicate = await send(`token=${token}&token=${token}`, basic);
    expect(duplicate.status).toBe(400);
    expect(duplicate.body.error).toBe('invalid_request');

    const twoMechanisms = await send(`token=${token}&client_id=${billing.id}&client_secret=${billing.secret}`, basic);
    expect(twoMechanisms).toMatchObject({ status: 400, body: { error: 'invalid_request' } });

    // Percent-encoded credentials are decoded by the provider (RFC 6749 §2.3.1), and still work.
    const encoded = await send(`token=${token}&client_id=${billing.id}&client_secret=${encodeURIComponent(billing.secret)}%20`.replace('%20', ''));
    expect(encoded.body.active).toBe(true);

    const wrong = await send(`token=${token}`, `Basic ${Buffer.from(`${billing.id}:nope`).toString('base64')}`);
    expect(wrong).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });
});

describe('revocation', () => {
  it('revokes a JWT access token: introspection says active false at once', async () => {
    const token = await issue(billing, orders.identifier);
    const res = await revoke(token, billing, { token_type_hint: 'access_token' });
    expect(res.status).toBe(200);
    expect(res.body).toBe('');
    for (const caller of [billing, gateway, auditor]) {
      expect((await introspect(token, caller)).body).toEqual({ active: false });
    }
    // Revoking again, or revoking garbage, is not an error (RFC 7009 §2.2).
    expect((await revoke(token, billing)).status).toBe(200);
    expect((await revoke('garbage', billing)).status).toBe(200);
  });

  it('refuses to let another client revoke a token', async () => {
    const token = await issue(billing, orders.identifier);
    const res = await revoke(token, shipping);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'unauthorized_client', error_description: 'client is not authorized to revoke the presented token',
    });
    expect((await introspect(token, billing)).body.active).toBe(true);
    expect((await revoke(token)).status).toBe(401);
  });

  it('introspects and revokes opaque access tokens with the same policy', async () => {
    const token = await issue(billing, ledger.identifier);
    expect(token.split('.')).toHaveLength(1);
    const res = await introspect(token, billing);
    expect(res.body).toMatchObject({
      active: true, scope: 'ledger:read', client_id: billing.id, sub: billing.id, aud: ledger.identifier, token_type: 'Bearer',
      roles: expect.any(Array),
    });
    expect((await introspect(token, auditor)).body.active).toBe(true);
    // The gateway introspects only for the orders API.
    expect((await introspect(token, gateway)).body).toEqual({ active: false });
    expect((await introspect(token, shipping)).body).toEqual({ active: false });
    const refused = await revoke(token, shipping);
    expect(refused.body.error).toBe('unauthorized_client');
    expect((await revoke(token, billing)).status).toBe(200);
    expect((await introspect(token, billing)).body).toEqual({ active: false });
  });

  it('revokes a refresh token and the grant behind it', async () => {
    const { provider } = server.app;
    const client = await provider.Client.find(billing.id);
    const grant = new provider.Grant({ clientId: billing.id, accountId: 'user-1' });
    grant.addOIDCScope('openid offline_access');
    const grantId = await grant.save();
    const base = { client: client!, accountId: 'user-1', grantId, scope: 'openid offline_access', gty: 'authorization_code' };
    const refreshToken = await new provider.RefreshToken(base as never).save();
    const sibling = await new provider.RefreshToken(base as never).save();

    const before = await introspect(refreshToken, billing, { token_type_hint: 'refresh_token' });
    expect(before.body).toMatchObject({ active: true, client_id: billing.id, sub: 'user-1' });
    expect((await revoke(refreshToken, billing, { token_type_hint: 'refresh_token' })).status).toBe(200);
    expect((await introspect(refreshToken, billing)).body).toEqual({ active: false });
    // RFC 7009 §2.1: revoking a refresh token also invalidates the rest of its grant.
    expect((await introspect(sibling, billing)).body).toEqual({ active: false });
  });
});

describe('public clients (token endpoint auth method none)', () => {
  /** A public app's tokens for a person: a JWT access token and a refresh token. */
  async function publicAppTokens() {
    const spa = await signInWorld(tdb.database.db, { public: true });
    const flow = await signIn(server.url, spa);
    const res = await postForm(`${server.url}/token`, {
      grant_type: 'authorization_code', code: flow.code, code_verifier: flow.verifier, redirect_uri: CALLBACK,
      client_id: spa.client.id, resource: spa.api.identifier,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return { spa, access: res.body.access_token as string, refreshToken: res.body.refresh_token as string };
  }

  it('cannot introspect, not even its own tokens: 401 as without client authentication (RFC 7662 §2.1)', async () => {
    const { spa, access, refreshToken } = await publicAppTokens();
    expect((await introspect(access, auditor)).body.active).toBe(true);
    const anonymous = await introspect(access);
    for (const token of [access, refreshToken, 'not-a-token']) {
      const res = await introspect(token, undefined, { client_id: spa.client.id });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'invalid_client', error_description: 'client authentication is required' });
      expect(res.headers.get('www-authenticate')).toBe(`Basic realm="${server.url}"`);
      // Exactly the answer to a request naming no client.
      expect([res.status, res.body, res.headers.get('www-authenticate')])
        .toEqual([anonymous.status, anonymous.body, anonymous.headers.get('www-authenticate')]);
    }
  });

  it('may revoke its own refresh token with its client_id alone (RFC 7009 §2.1), and nobody else\'s', async () => {
    const { spa, refreshToken } = await publicAppTokens();
    const others = await issue(billing, orders.identifier);
    const refused = await revoke(others, undefined, { client_id: spa.client.id });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('unauthorized_client');
    expect((await introspect(others, billing)).body.active).toBe(true);

    expect((await revoke(refreshToken, undefined, { client_id: spa.client.id, token_type_hint: 'refresh_token' })).status).toBe(200);
    const refreshed = await postForm(`${server.url}/token`, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: spa.client.id });
    expect(refreshed.status).toBe(400);
    expect(refreshed.body.error).toBe('invalid_grant');
  });
});

describe('the introspect permission', () => {
  it('is exactly `introspect` on urn:postern: the admin scopes of urn:postern do not give it', async () => {
    const db = tdb.database.db;
    const admin = await serviceClient(db, [(await role(db, [{ api: 'urn:postern', scopes: ['admin:read', 'admin:write'] }])).name]);
    const jwt = await issue(billing, orders.identifier);
    const opaque = await issue(billing, ledger.identifier);
    for (const token of [jwt, opaque]) {
      expect((await introspect(token, auditor)).body.active).toBe(true);
      expect((await introspect(token, admin)).body).toEqual({ active: false });
    }
  });
});
