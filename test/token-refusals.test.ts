// A refused code exchange or refresh spends nothing. Every refusal a correct retry can cure (an
// unknown or ungranted resource, a scope beyond the grant, a missing DPoP proof or certificate)
// comes before the code or refresh token is consumed, so the retry succeeds and the grant is not
// revoked as if the token had been replayed. Certificates come through a trusted proxy's header.
import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateApi } from '../src/services/apis.ts';
import { updateClient } from '../src/services/clients.ts';
import { loadTlsMaterial } from '../src/platform/tls.ts';
import { createAuthority, writePem, type Authority, type Issued } from './support/certificates.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api } from './support/fixtures.ts';
import { cleanUp, makeTempDir } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';
import { CALLBACK, introspect, signIn, signInWorld, type World } from './support/sign-in.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

const HEADER = 'x-client-cert';

let tdb: TestDatabase;
let server: TestServer;
let ca: Authority;

interface DpopKey { privateKey: CryptoKey; publicJwk: JWK; nonce?: string }
interface Answer { status: number; headers: Headers; body: any }

async function dpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, publicJwk: await exportJWK(publicKey) };
}

/**
 * A token request as the world's app (Basic for a confidential one, client_id in the form for a
 * public one), with a DPoP proof and a certificate when given. With a proof, retried once with
 * the nonce the server asks for (RFC 9449 §8), as client libraries do.
 */
async function tokenRequest(world: World, form: Record<string, string>, extras: { dpop?: DpopKey; cert?: Issued } = {}): Promise<Answer> {
  const url = `${server.url}/token`;
  const send = async (): Promise<Answer> => {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    const body = { ...form };
    if (world.client.secret) {
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(world.client.id)}:${encodeURIComponent(world.client.secret)}`).toString('base64')}`;
    } else {
      body.client_id = world.client.id;
    }
    if (extras.dpop) {
      const { privateKey, publicJwk, nonce } = extras.dpop;
      headers.dpop = await new SignJWT({ htm: 'POST', htu: url, jti: randomUUID(), ...(nonce ? { nonce } : {}) })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: publicJwk }).setIssuedAt().sign(privateKey);
    }
    if (extras.cert) headers[HEADER] = encodeURIComponent(extras.cert.cert);
    const response = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(body).toString() });
    return { status: response.status, headers: response.headers, body: await response.json() };
  };
  const answer = await send();
  if (!extras.dpop || answer.body.error !== 'use_dpop_nonce') return answer;
  extras.dpop.nonce = answer.headers.get('dpop-nonce')!;
  return send();
}

const exchange = (world: World, flow: { code: string; verifier: string }, extra: Record<string, string> = {}) =>
  ({ grant_type: 'authorization_code', code: flow.code, code_verifier: flow.verifier, redirect_uri: CALLBACK, ...extra });
const refreshWith = (refreshToken: string, extra: Record<string, string> = {}) =>
  ({ grant_type: 'refresh_token', refresh_token: refreshToken, ...extra });

/** Signs in and exchanges the code (no resource: a token for userinfo): the first tokens of a grant. */
async function tokensOf(world: World, extras: { dpop?: DpopKey; cert?: Issued } = {}) {
  const flow = await signIn(server.url, world);
  const tokens = await tokenRequest(world, exchange(world, flow), extras);
  expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
  expect(tokens.body.refresh_token).toBeTruthy();
  return tokens.body as { access_token: string; refresh_token: string };
}

/** Nothing of the grant was revoked: each token still introspects active. */
async function expectActive(world: World, ...tokens: string[]) {
  for (const token of tokens) expect((await introspect(server.url, world, token)).body.active).toBe(true);
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  ca = await createAuthority();
  const caFile = writePem(makeTempDir('postern-refusals-'), 'ca.pem', ca.cert);
  server = await startServer(tdb.database, { TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '127.0.0.1' }, '', {
    tls: loadTlsMaterial({ tls: undefined, mtls: { caFile, header: HEADER, proxies: [] } }),
  });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
  await cleanUp();
});

describe('a refused refresh leaves the refresh token usable and the grant whole', () => {
  it('an unknown resource, or one the grant does not hold (invalid_target)', async () => {
    const world = await signInWorld(tdb.database.db);
    const other = await api(tdb.database.db, { scopes: ['other:read'] });
    const first = await tokensOf(world);
    for (const resource of ['https://unknown.example/', other.identifier]) {
      const refused = await tokenRequest(world, refreshWith(first.refresh_token, { resource }));
      expect(refused.status, resource).toBe(400);
      expect(refused.body.error, resource).toBe('invalid_target');
    }
    const retried = await tokenRequest(world, refreshWith(first.refresh_token, { resource: world.api.identifier }));
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, first.access_token, retried.body.access_token, retried.body.refresh_token);
  });

  it('a scope beyond the grant (invalid_scope)', async () => {
    const world = await signInWorld(tdb.database.db);
    const first = await tokensOf(world);
    const refused = await tokenRequest(world, refreshWith(first.refresh_token, { scope: 'openid orders:read orders:delete' }));
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_scope');
    const retried = await tokenRequest(world, refreshWith(first.refresh_token, { scope: 'openid orders:read' }));
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, first.access_token, retried.body.refresh_token);
  });

  it('no DPoP proof for an API that requires DPoP', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateApi(tdb.database.db, world.api.id, { requireDpop: true }, NO_AUDIT);
    const first = await tokensOf(world);
    const form = refreshWith(first.refresh_token, { resource: world.api.identifier });
    const refused = await tokenRequest(world, form);
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this resource (RFC 9449)' });
    const retried = await tokenRequest(world, form, { dpop: await dpopKey() });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    expect(retried.body.token_type).toBe('DPoP');
    await expectActive(world, first.access_token, retried.body.refresh_token);
  });

  it('no DPoP proof from an app that requires DPoP', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateClient(tdb.database.db, world.client.id, { requireDpop: true }, NO_AUDIT);
    const key = await dpopKey();
    const first = await tokensOf(world, { dpop: key });
    const refused = await tokenRequest(world, refreshWith(first.refresh_token));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this client (RFC 9449)' });
    const retried = await tokenRequest(world, refreshWith(first.refresh_token), { dpop: key });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, retried.body.refresh_token);
  });

  it('no client certificate from an app whose tokens are bound to one', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateClient(tdb.database.db, world.client.id, { requireMtls: true }, NO_AUDIT);
    const cert = await ca.issue('CN=webapp,O=Example');
    const first = await tokensOf(world, { cert });
    const refused = await tokenRequest(world, refreshWith(first.refresh_token));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a client certificate is required for this client (RFC 8705)' });
    const retried = await tokenRequest(world, refreshWith(first.refresh_token), { cert });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, retried.body.refresh_token);
  });

  it('a token for an API that requires certificate-bound tokens, asked by an app not registered for them', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateApi(tdb.database.db, world.api.id, { requireMtls: true }, NO_AUDIT);
    const first = await tokensOf(world);
    const refused = await tokenRequest(world, refreshWith(first.refresh_token, { resource: world.api.identifier }), { cert: await ca.issue('CN=webapp') });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_request');
    // The same refresh token still serves what the app may have.
    const retried = await tokenRequest(world, refreshWith(first.refresh_token));
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, first.access_token, retried.body.refresh_token);
  });

  it('still revokes the grant when a refresh token that was used is presented again', async () => {
    const world = await signInWorld(tdb.database.db);
    const first = await tokensOf(world);
    const next = await tokenRequest(world, refreshWith(first.refresh_token));
    expect(next.status).toBe(200);
    const replayed = await tokenRequest(world, refreshWith(first.refresh_token, { resource: 'https://unknown.example/' }));
    expect(replayed.body.error).toBe('invalid_grant');
    expect((await introspect(server.url, world, next.body.refresh_token)).body.active).toBe(false);
  });
});

describe('a refused code exchange leaves the code usable', () => {
  it('an unknown resource, or one the person did not consent to (invalid_target)', async () => {
    const world = await signInWorld(tdb.database.db);
    const other = await api(tdb.database.db, { scopes: ['other:read'] });
    const flow = await signIn(server.url, world);
    for (const resource of ['https://unknown.example/', other.identifier]) {
      const refused = await tokenRequest(world, exchange(world, flow, { resource }));
      expect(refused.status, resource).toBe(400);
      expect(refused.body.error, resource).toBe('invalid_target');
    }
    const retried = await tokenRequest(world, exchange(world, flow, { resource: world.api.identifier }));
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, retried.body.access_token, retried.body.refresh_token);
  });

  it('no DPoP proof for an API that requires DPoP', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateApi(tdb.database.db, world.api.id, { requireDpop: true }, NO_AUDIT);
    const flow = await signIn(server.url, world);
    const form = exchange(world, flow, { resource: world.api.identifier });
    const refused = await tokenRequest(world, form);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this resource (RFC 9449)' });
    const retried = await tokenRequest(world, form, { dpop: await dpopKey() });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, retried.body.refresh_token);
  });

  it('no DPoP proof for a code bound to a DPoP key (dpop_jkt, RFC 9449 §10)', async () => {
    const world = await signInWorld(tdb.database.db);
    const key = await dpopKey();
    const flow = await signIn(server.url, world, { dpop_jkt: await calculateJwkThumbprint(key.publicJwk) });
    const refused = await tokenRequest(world, exchange(world, flow));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({
      error: 'invalid_request', error_description: 'a DPoP proof is required for this authorization code (RFC 9449 §10)',
    });
    const otherKey = await tokenRequest(world, exchange(world, flow), { dpop: await dpopKey() });
    expect(otherKey.status).toBe(400);
    expect(otherKey.body.error).toBe('invalid_grant');
    const retried = await tokenRequest(world, exchange(world, flow), { dpop: key });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, retried.body.refresh_token);
  });

  it('no client certificate from an app whose tokens are bound to one', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateClient(tdb.database.db, world.client.id, { requireMtls: true }, NO_AUDIT);
    const flow = await signIn(server.url, world);
    const refused = await tokenRequest(world, exchange(world, flow));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a client certificate is required for this client (RFC 8705)' });
    const retried = await tokenRequest(world, exchange(world, flow), { cert: await ca.issue('CN=webapp,O=Example') });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    await expectActive(world, retried.body.refresh_token);
  });

  it('no DPoP proof from an app that requires DPoP', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateClient(tdb.database.db, world.client.id, { requireDpop: true }, NO_AUDIT);
    const flow = await signIn(server.url, world);
    const refused = await tokenRequest(world, exchange(world, flow));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this client (RFC 9449)' });
    const retried = await tokenRequest(world, exchange(world, flow), { dpop: await dpopKey() });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    expect(retried.body.token_type).toBe('DPoP');
  });

  it('is still good for one exchange only', async () => {
    const world = await signInWorld(tdb.database.db);
    const flow = await signIn(server.url, world);
    const first = await tokenRequest(world, exchange(world, flow));
    expect(first.status).toBe(200);
    const again = await tokenRequest(world, exchange(world, flow, { resource: 'https://unknown.example/' }));
    expect(again.body.error).toBe('invalid_grant');
    expect((await introspect(server.url, world, first.body.refresh_token)).body.active).toBe(false);
  });
});

describe('a public app\'s refresh token bound to its DPoP key (RFC 9449 §5)', () => {
  it('without a proof: told so, and the refresh token still works with one; with another key: invalid_grant', async () => {
    const world = await signInWorld(tdb.database.db, { public: true });
    const key = await dpopKey();
    const first = await tokensOf(world, { dpop: key });
    const refused = await tokenRequest(world, refreshWith(first.refresh_token));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this refresh token (RFC 9449 §5)' });
    const otherKey = await tokenRequest(world, refreshWith(first.refresh_token), { dpop: await dpopKey() });
    expect(otherKey.status).toBe(400);
    expect(otherKey.body).toEqual({ error: 'invalid_grant', error_description: 'grant request is invalid' });
    const retried = await tokenRequest(world, refreshWith(first.refresh_token), { dpop: key });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
  });
});

describe('the audit log records the answer the client got', () => {
  it('for a replayed DPoP proof, and for a missing one', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateClient(tdb.database.db, world.client.id, { requireDpop: true }, NO_AUDIT);
    const key = await dpopKey();
    const first = await tokensOf(world, { dpop: key });
    // The same proof twice: made once, sent with the nonce the server gave.
    const url = `${server.url}/token`;
    const proof = await new SignJWT({ htm: 'POST', htu: url, jti: randomUUID(), nonce: key.nonce })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk }).setIssuedAt().sign(key.privateKey);
    const send = (refreshToken: string) => fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded', dpop: proof,
        authorization: `Basic ${Buffer.from(`${world.client.id}:${world.client.secret}`).toString('base64')}`,
      },
      body: new URLSearchParams(refreshWith(refreshToken)).toString(),
    }).then(async (response) => ({ status: response.status, body: await response.json() as any }));
    const once = await send(first.refresh_token);
    expect(once.status, JSON.stringify(once.body)).toBe(200);
    const replayed = await send(once.body.refresh_token);
    expect(replayed.status).toBe(400);
    expect(replayed.body).toEqual({ error: 'invalid_dpop_proof', error_description: 'this DPoP proof was used before (RFC 9449 §11.1)' });
    const missing = await tokenRequest(world, refreshWith(once.body.refresh_token));
    expect(missing.body.error).toBe('invalid_request');

    // Refusals are counted per kind and minute: write the counts now.
    await server.app.audit.flush({ counts: true });
    const rows = await tdb.database.db.selectFrom('audit_events').selectAll()
      .where('type', '=', 'token.failure').where('client_id', '=', world.client.id).orderBy('id').execute();
    // (The code exchange before was told to use a nonce first: recorded too.)
    const recorded = rows.map((row) => row.details).filter((details) => details.grantType === 'refresh_token')
      .map(({ error, errorDescription, status, route, grantType, count }) => ({ error, errorDescription, status, route, grantType, count }));
    expect(recorded).toEqual(expect.arrayContaining([replayed, missing].map((answer) => ({
      error: answer.body.error, errorDescription: answer.body.error_description, status: 400, route: 'token', grantType: 'refresh_token', count: 1,
    }))));
    expect(recorded).toHaveLength(2);
  });
});
