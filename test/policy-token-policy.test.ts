// Who may introspect or revoke a token, and when a JWT access token of ours still counts
// (oidc/token-policy.ts): the policy object of a running server, asked directly, and the answers
// it gives over HTTP. Certificates come through a trusted proxy's header; DPoP proofs are real.
import { randomUUID } from 'node:crypto';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateApi } from '../src/services/apis.ts';
import { setClientEnabled, updateClient } from '../src/services/clients.ts';
import { grantScopes, ungrantScopes } from '../src/services/roles.ts';
import { revokeClientTokens } from '../src/services/tokens.ts';
import { loadTlsMaterial } from '../src/platform/tls.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { opaqueTokenKey } from '../src/domain/token-exchange.ts';
import { TokenPolicy } from '../src/oidc/token-policy.ts';
import { createAuthority, writePem, type Authority } from './support/certificates.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { cleanUp, makeTempDir } from './support/process.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

const HEADER = 'x-client-cert';

type Credentials = { id: string; secret: string };

let tdb: TestDatabase;
let server: TestServer;
let ca: Authority;
let tokenPolicy: TokenPolicy;

/** A policy over the server's own database, directory and published keys, as the provider builds its own. */
const policy = (): TokenPolicy => tokenPolicy;
const token = async (client: Credentials, form: Record<string, string> = {}, headers: Record<string, string> = {}) => {
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64')}`;
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, ...headers },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString(),
  });
  const body = await response.json() as any;
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body.access_token as string;
};
const introspect = (value: string, caller?: Credentials) => postForm(`${server.url}/token/introspection`, { token: value }, caller);

/** A client with a role on a fresh API: the API, the client and a token for it. */
async function world(apiInput: Parameters<typeof api>[1] = { scopes: ['a:read', 'a:write'] }) {
  const db = tdb.database.db;
  const target = await api(db, apiInput);
  const granted = await role(db, [{ api: target.identifier, scopes: apiInput.scopes }]);
  const client = await serviceClient(db, [granted.name]);
  return { api: target, role: granted, client };
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  ca = await createAuthority();
  const caFile = writePem(makeTempDir('postern-token-policy-'), 'ca.pem', ca.cert);
  server = await startServer(tdb.database, { TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '127.0.0.1' }, '', {
    tls: loadTlsMaterial({ tls: undefined, mtls: { caFile, header: HEADER, proxies: [] } }),
  });
  const jwks = await (await fetch(`${server.url}/jwks`)).json() as { keys: JWK[] };
  tokenPolicy = new TokenPolicy({ db: tdb.database.db, directory: server.app.directory, issuer: server.url, signingKeys: jwks.keys });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
  await cleanUp();
});

describe('the client\'s revoke-all cut-off', () => {
  it('counts a token issued in the cut-off\'s second as earlier, and one of the second before as usable', async () => {
    const { api: target, client } = await world();
    const value = await token(client);
    const { iat } = decodeJwt(value);
    expect(await policy().clientStillTrusts(client.id, iat)).toBe(true);
    expect(await policy().clientStillTrusts(client.id, undefined)).toBe(true);
    // Exactly at the start of the token's second: issued not before it.
    await revokeClientTokens(tdb.database.db, client.id, NO_AUDIT, new Date(iat! * 1000));
    expect(await policy().clientStillTrusts(client.id, iat)).toBe(true);
    expect(await policy().clientStillTrusts(client.id, iat! + 1)).toBe(true);
    expect(await policy().clientStillTrusts(client.id, undefined)).toBe(false);
    expect(await policy().activeJwt(value)).toBeDefined();
    expect(await policy().usableJwt(value, target.identifier)).toBeDefined();
    expect((await introspect(value, client)).body.active).toBe(true);
    // A millisecond later: the token's second counts as before the cut-off.
    await revokeClientTokens(tdb.database.db, client.id, NO_AUDIT, new Date(iat! * 1000 + 1));
    expect(await policy().clientStillTrusts(client.id, iat)).toBe(false);
    expect(await policy().clientStillTrusts(client.id, iat! + 1)).toBe(true);
    expect(await policy().activeJwt(value)).toBeUndefined();
    expect(await policy().usableJwt(value, target.identifier)).toBeUndefined();
    expect(await policy().mayIntrospect(client.id, client.id, target.identifier, iat)).toBe(false);
    expect((await introspect(value, client)).body).toEqual({ active: false });
  });

  it('leaves nothing usable of a disabled or unknown client', async () => {
    const { api: target, client } = await world();
    const value = await token(client);
    const { iat } = decodeJwt(value);
    expect(await policy().clientStillTrusts('nobody', iat)).toBe(false);
    await setClientEnabled(tdb.database.db, client.id, false, NO_AUDIT);
    expect(await policy().clientStillTrusts(client.id, iat)).toBe(false);
    expect(await policy().activeJwt(value)).toBeUndefined();
    expect(await policy().usableJwt(value, target.identifier)).toBeUndefined();
    expect(await policy().mayIntrospect(client.id, client.id, target.identifier, iat)).toBe(false);
  });
});

describe('who may introspect', () => {
  it('the owner, the introspection client of one of its audiences, a holder of introspect on urn:postern; nobody else', async () => {
    const db = tdb.database.db;
    const { api: target, client } = await world();
    const other = await api(db, { scopes: ['b:read'] });
    const gateway = await serviceClient(db);
    const stranger = await serviceClient(db);
    await updateApi(db, target.identifier, { introspectionClient: gateway.id }, NO_AUDIT);
    const auditor = await serviceClient(db, [(await role(db, [{ api: 'urn:postern', scopes: ['introspect'] }])).name]);
    const admin = await serviceClient(db, [(await role(db, [{ api: 'urn:postern', scopes: ['admin:read'] }])).name]);
    const may = (caller: string, aud: unknown) => policy().mayIntrospect(caller, client.id, aud);
    expect(await may(client.id, other.identifier)).toBe(true);
    expect(await may(gateway.id, target.identifier)).toBe(true);
    expect(await may(gateway.id, [other.identifier, target.identifier])).toBe(true);
    expect(await may(gateway.id, other.identifier)).toBe(false);
    expect(await may(gateway.id, 'https://unknown.example/')).toBe(false);
    expect(await may(auditor.id, other.identifier)).toBe(true);
    expect(await may(admin.id, target.identifier)).toBe(false);
    expect(await may(stranger.id, target.identifier)).toBe(false);
    expect(await may('nobody', target.identifier)).toBe(false);
    expect(await policy().mayIntrospect(client.id, 'nobody', target.identifier)).toBe(false);
    // An exchanged opaque token whose lineage is revoked is inactive for everyone, the owner too.
    expect(await policy().mayIntrospect(client.id, client.id, target.identifier, undefined, { lin: 'not a lineage' })).toBe(false);
    expect(await policy().mayIntrospect(client.id, client.id, target.identifier, undefined, { lin: { t: [], c: [client.id] } })).toBe(true);
  });
});

describe('a token\'s lineage', () => {
  it('is revoked when malformed, when a client of the chain is gone, disabled or cut off, or a token of it revoked', async () => {
    const db = tdb.database.db;
    const { client } = await world();
    const { client: second } = await world();
    const now = Math.floor(Date.now() / 1000);
    const revoked = (claims: { gid?: unknown; lin?: unknown; iat?: number }) => policy().lineageRevoked(claims);
    expect(await revoked({})).toBe(false);
    expect(await revoked({ gid: 'never-revoked' })).toBe(false);
    expect(await revoked({ gid: 42 })).toBe(false);
    expect(await revoked({ lin: { t: [], c: [client.id, second.id] }, iat: now })).toBe(false);
    expect(await revoked({ lin: null })).toBe(true);
    expect(await revoked({ lin: { t: [], c: [client.id, 'nobody'] }, iat: now })).toBe(true);
    expect(await revoked({ lin: { t: 'x', c: [] } })).toBe(true);
    const value = await token(second);
    const { jti } = decodeJwt(value);
    await postForm(`${server.url}/token/revocation`, { token: value }, second);
    expect(await revoked({ lin: { t: [jti!], c: [] } })).toBe(true);
    expect(await revoked({ lin: { t: ['not-revoked'], c: [] } })).toBe(false);
    await revokeClientTokens(db, second.id, NO_AUDIT, new Date((now + 10) * 1000));
    expect(await revoked({ lin: { t: [], c: [client.id, second.id] }, iat: now })).toBe(true);
    expect(await revoked({ lin: { t: [], c: [client.id, second.id] }, iat: now + 20 })).toBe(false);
    await setClientEnabled(db, client.id, false, NO_AUDIT);
    expect(await revoked({ lin: { t: [], c: [client.id] }, iat: now + 20 })).toBe(true);
  });
});

describe('revocation', () => {
  it('only by the owner: another client is told unauthorized_client; a token not of ours is no error', async () => {
    const { api: target, client } = await world();
    const { client: other } = await world();
    const value = await token(client);
    expect(() => policy().mayRevoke(other.id, client.id)).toThrow(expect.objectContaining({
      error: 'unauthorized_client', error_description: 'client is not authorized to revoke the presented token',
    }));
    expect(() => policy().mayRevoke(client.id, client.id)).not.toThrow();
    await expect(policy().revokeJwt(other.id, value)).rejects.toMatchObject({
      error: 'unauthorized_client', error_description: 'client is not authorized to revoke the presented token',
    });
    const refused = await postForm(`${server.url}/token/revocation`, { token: value }, other);
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'unauthorized_client', error_description: 'client is not authorized to revoke the presented token' });
    await policy().revokeJwt(other.id, 'not.a.token');
    expect(await policy().activeJwt(value)).toBeDefined();
    await policy().revokeJwt(client.id, value);
    expect(await policy().activeJwt(value)).toBeUndefined();
    expect(await policy().usableJwt(value, target.identifier)).toBeUndefined();
    expect(await policy().introspectJwt(client.id, value)).toEqual({ active: false });
    const row = await tdb.database.db.selectFrom('revoked_tokens').selectAll().where('jti', '=', decodeJwt(value).jti!).executeTakeFirstOrThrow();
    expect(row.client_id).toBe(client.id);
    expect(row.expires_at.getTime()).toBe(decodeJwt(value).exp! * 1000);
  });

  it('of an opaque access token puts its key on the list until it would expire; nothing for other kinds or incomplete tokens', async () => {
    const db = tdb.database.db;
    const count = async () => Number((await db.selectFrom('revoked_tokens').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const before = await count();
    const exp = Math.floor(Date.now() / 1000) + 600;
    for (const incomplete of [
      { kind: 'RefreshToken', jti: 'r1', clientId: 'c', exp },
      { kind: 'AuthorizationCode', jti: 'r2', clientId: 'c', exp },
      { jti: 'r3', clientId: 'c', exp },
      { kind: 'AccessToken', clientId: 'c', exp },
      { kind: 'AccessToken', jti: 'r4', exp },
      { kind: 'AccessToken', jti: 'r5', clientId: 'c' },
    ]) await policy().recordOpaqueRevocation(incomplete);
    expect(await count()).toBe(before);
    await policy().recordOpaqueRevocation({ kind: 'AccessToken', jti: 'a1', clientId: 'c', exp });
    await policy().recordOpaqueRevocation({ kind: 'ClientCredentials', jti: 'a2', clientId: 'c', exp });
    expect(await count()).toBe(before + 2);
    for (const jti of ['a1', 'a2']) {
      const row = await db.selectFrom('revoked_tokens').selectAll().where('jti', '=', opaqueTokenKey(jti)).executeTakeFirstOrThrow();
      expect(row.client_id).toBe('c');
      expect(row.expires_at.getTime()).toBe(exp * 1000);
    }
  });
});

describe('introspection answers', () => {
  it('every field of a JWT, Bearer or DPoP by its binding', async () => {
    const { api: target, client } = await world();
    const value = await token(client, { scope: 'a:read' });
    const claims = decodeJwt(value);
    expect(await policy().introspectJwt(client.id, value)).toEqual({
      active: true, scope: 'a:read', client_id: client.id, sub: client.id, aud: target.identifier, iss: server.url,
      exp: claims.exp, iat: claims.iat, jti: claims.jti, token_type: 'Bearer', roles: claims.roles,
    });
    expect(await policy().introspectJwt(client.id, 'garbage')).toEqual({ active: false });

    const { client: dpopClient, api: dpopApi } = await world({ scopes: ['d:read'], requireDpop: true });
    const bound = await dpopToken(dpopClient, {});
    const answer = await policy().introspectJwt(dpopClient.id, bound);
    expect(answer).toMatchObject({ active: true, token_type: 'DPoP', aud: dpopApi.identifier, cnf: { jkt: expect.any(String) } });
  });

  it('of an opaque client-credentials token name the client as subject and leave out bookkeeping', async () => {
    const { client } = await world({ scopes: ['o:read'], tokenFormat: 'opaque' });
    const value = await token(client);
    const answer = await introspect(value, client);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ active: true, sub: client.id, client_id: client.id, scope: 'o:read' });
    expect(answer.body.lin).toBeUndefined();
    expect(answer.body.gid).toBeUndefined();
  });

  it('without client authentication: 401 invalid_client with a Basic challenge, at introspection, revocation and token', async () => {
    for (const path of ['/token/introspection', '/token/revocation', '/token']) {
      const form: Record<string, string> = path === '/token' ? { grant_type: 'client_credentials' } : { token: 'x' };
      const res = await postForm(`${server.url}${path}`, form);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate'), path).toBe(`Basic realm="${server.url}"`);
      expect(res.body, path).toEqual({ error: 'invalid_client', error_description: 'client authentication is required' });
    }
    // Any other refusal is left as it was.
    const wrong = await postForm(`${server.url}/token/introspection`, { token: 'x' }, { id: 'nobody', secret: 'x' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error_description).not.toBe('client authentication is required');
  });
});

async function dpopToken(client: Credentials, form: Record<string, string>): Promise<string> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = await exportJWK(publicKey);
  const url = `${server.url}/token`;
  const proof = (nonce?: string) => new SignJWT({ htm: 'POST', htu: url, jti: randomUUID(), ...(nonce ? { nonce } : {}) })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk }).setIssuedAt().sign(privateKey);
  const basic = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
  const send = async (nonce?: string) => fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic, dpop: await proof(nonce) },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString(),
  });
  let response = await send();
  if (response.status === 400 && response.headers.get('dpop-nonce')) response = await send(response.headers.get('dpop-nonce')!);
  const body = await response.json() as any;
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body.access_token;
}

describe('a token presented to an API (the admin API\'s check)', () => {
  it('is refused when DPoP-bound, accepted when certificate-bound only with that certificate, and for its audience only', async () => {
    const { client, api: target } = await world({ scopes: ['d:read'], requireDpop: true });
    const bound = await dpopToken(client, {});
    expect(await policy().usableJwt(bound, target.identifier)).toBeDefined();
    expect(await policy().verifyAccessToken(bound, target.identifier)).toBeUndefined();
    expect(await policy().authorizeAccessToken(bound, target.identifier)).toBeUndefined();

    const mtls = await world({ scopes: ['m:read'] });
    await updateClient(tdb.database.db, mtls.client.id, { requireMtls: true }, NO_AUDIT);
    const cert = await ca.issue('CN=svc,O=Example');
    const other = await ca.issue('CN=other,O=Example');
    const certBound = await token(mtls.client, {}, { [HEADER]: encodeURIComponent(cert.cert) });
    expect(await policy().verifyAccessToken(certBound, mtls.api.identifier, cert.thumbprint)).toBeDefined();
    expect(await policy().verifyAccessToken(certBound, mtls.api.identifier, other.thumbprint)).toBeUndefined();
    expect(await policy().verifyAccessToken(certBound, mtls.api.identifier)).toBeUndefined();

    const plain = await world({ scopes: ['p:read'] });
    const unbound = await token(plain.client);
    expect(await policy().verifyAccessToken(unbound, plain.api.identifier, cert.thumbprint)).toBeDefined();
    expect(await policy().verifyAccessToken(unbound, plain.api.identifier)).toBeDefined();
    expect(await policy().verifyAccessToken(unbound, mtls.api.identifier)).toBeUndefined();
    expect(await policy().usableJwt(unbound, mtls.api.identifier)).toBeUndefined();
    expect(await policy().verifyAccessToken('garbage', plain.api.identifier)).toBeUndefined();
  });

  it('allows what it carries and the client still holds: narrowed at once, never widened', async () => {
    const db = tdb.database.db;
    const { client, api: target, role: granted } = await world({ scopes: ['a:read', 'a:write', 'a:admin'] });
    await ungrantScopes(db, granted.name, { api: target.identifier, scopes: ['a:admin'] }, NO_AUDIT);
    const value = await token(client);
    expect(await policy().authorizeAccessToken(value, target.identifier)).toEqual({ clientId: client.id, scopes: ['a:read', 'a:write'] });
    await grantScopes(db, granted.name, { api: target.identifier, scopes: ['a:admin'] }, NO_AUDIT);
    await ungrantScopes(db, granted.name, { api: target.identifier, scopes: ['a:write'] }, NO_AUDIT);
    expect(await policy().authorizeAccessToken(value, target.identifier)).toEqual({ clientId: client.id, scopes: ['a:read'] });
    await ungrantScopes(db, granted.name, { api: target.identifier, scopes: ['a:read', 'a:admin'] }, NO_AUDIT);
    expect(await policy().authorizeAccessToken(value, target.identifier)).toEqual({ clientId: client.id, scopes: [] });
    expect(await policy().authorizeAccessToken(value, 'https://elsewhere.example/')).toBeUndefined();
  });
});
