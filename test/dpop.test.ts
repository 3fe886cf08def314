// DPoP (RFC 9449): tokens bound to the client's key (cnf.jkt), required per API or per client,
// server nonces that every process accepts, and cnf in introspection. Driven with oauth4webapi
// and with proofs made by hand for what a well-behaved library never sends.
import { randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { updateApi } from '../src/services/apis.ts';
import { createClient } from '../src/services/clients.ts';
import { adminCall } from './support/admin.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { cleanUp, freePort, ServerProcess } from './support/process.ts';
import { postForm, startServer, TEST_MASTER_KEY, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

const insecure = { [oauth.allowInsecureRequests]: true } as const;

let tdb: TestDatabase;
let server: TestServer;
let as: oauth.AuthorizationServer;
let orders: Awaited<ReturnType<typeof api>>;
let ledger: Awaited<ReturnType<typeof api>>;
let billing: Awaited<ReturnType<typeof serviceClient>>;

/** A client-credentials request with a DPoP handle, retried once with the nonce the server asks for. */
async function dpopToken(client: { id: string; secret: string }, dpop: oauth.DPoPHandle, parameters: Record<string, string>) {
  const request = () => oauth.clientCredentialsGrantRequest(as, { client_id: client.id }, oauth.ClientSecretBasic(client.secret),
    parameters, { ...insecure, DPoP: dpop });
  try {
    return await oauth.processClientCredentialsResponse(as, { client_id: client.id }, await request());
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    return oauth.processClientCredentialsResponse(as, { client_id: client.id }, await request());
  }
}

async function introspect(caller: { id: string; secret: string }, token: string) {
  return oauth.processIntrospectionResponse(as, { client_id: caller.id },
    await oauth.introspectionRequest(as, { client_id: caller.id }, oauth.ClientSecretBasic(caller.secret), token, insecure));
}

/** A DPoP proof made by hand (RFC 9449 §4.2), issued now unless `iat` says otherwise. */
async function proof(key: { privateKey: CryptoKey; publicJwk: JWK }, htu: string, claims: Record<string, unknown> = {}) {
  const { iat, ...rest } = claims;
  return new SignJWT({ htm: 'POST', htu, jti: randomUUID(), ...rest })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt(typeof iat === 'number' ? iat : undefined)
    .sign(key.privateKey);
}

async function proofKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, publicKey, publicJwk: await exportJWK(publicKey) };
}

async function postWithProof(url: string, form: Record<string, string>, client: { id: string; secret: string }, dpop?: string) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`,
      ...(dpop ? { dpop } : {}),
    },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const db = tdb.database.db;
  orders = await api(db, { scopes: ['orders:read'] });
  ledger = await api(db, { scopes: ['ledger:read'], tokenFormat: 'opaque', requireDpop: true });
  const reader = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }, { api: ledger.identifier, scopes: ['ledger:read'] }]);
  billing = await serviceClient(db, [reader.name]);
  as = await oauth.processDiscoveryResponse(new URL(server.url), await oauth.discoveryRequest(new URL(server.url), insecure));
});

afterAll(async () => {
  await server?.close();
  await cleanUp();
  await tdb?.drop();
});

describe('DPoP-bound tokens with oauth4webapi', () => {
  it('advertises DPoP in discovery', () => {
    expect(as.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256']));
  });

  it('binds a JWT access token to the key (cnf.jkt), and introspection says so', async () => {
    const keyPair = await generateKeyPair('ES256');
    const dpop = oauth.DPoP({}, keyPair);
    const tokens = await dpopToken(billing, dpop, { resource: orders.identifier });
    expect(tokens.token_type).toBe('dpop');
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    expect(await dpop.calculateThumbprint()).toBe(jkt);
    const payload = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString());
    expect(payload.cnf).toEqual({ jkt });
    expect(await introspect(billing, tokens.access_token)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt } });
  });

  it('binds an opaque access token too, and introspection returns cnf', async () => {
    const keyPair = await generateKeyPair('ES256');
    const tokens = await dpopToken(billing, oauth.DPoP({}, keyPair), { resource: ledger.identifier });
    expect(tokens.token_type).toBe('dpop');
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    expect(await introspect(billing, tokens.access_token)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt } });
  });

  it('issues Bearer tokens without a proof where nothing requires DPoP', async () => {
    const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource: orders.identifier }, billing);
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe('Bearer');
  });

  it('refuses a DPoP-bound token presented as a Bearer token to the admin API (RFC 9449 §7.2)', async () => {
    const admin = await serviceClient(tdb.database.db, [(await role(tdb.database.db, [{ api: 'urn:postern', scopes: ['admin:read'] }])).name]);
    const bound = await dpopToken(admin, oauth.DPoP({}, await generateKeyPair('ES256')), { resource: 'urn:postern' });
    const plain = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource: 'urn:postern' }, admin);
    const origin = new URL(server.url).origin;
    expect((await adminCall(origin, 'GET', '/keys', { token: plain.body.access_token })).status).toBe(200);
    expect((await adminCall(origin, 'GET', '/keys', { token: bound.access_token })).status).toBe(401);
  });
});

describe('requiring DPoP', () => {
  it('per API: a token request without a proof is 400 invalid_request', async () => {
    const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource: ledger.identifier }, billing);
    expect(res.status).toBe(400);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this resource (RFC 9449)' });
    // oauth4webapi reports it as an RFC 6749 error response.
    const error = await oauth.processClientCredentialsResponse(as, { client_id: billing.id },
      await oauth.clientCredentialsGrantRequest(as, { client_id: billing.id }, oauth.ClientSecretBasic(billing.secret),
        { resource: ledger.identifier }, insecure)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    expect((error as oauth.ResponseBodyError).error).toBe('invalid_request');
  });

  it('per API, changed at once: lifting the requirement gives Bearer tokens again', async () => {
    const api2 = await api(tdb.database.db, { scopes: ['x:read'] });
    const client = await serviceClient(tdb.database.db, [(await role(tdb.database.db, [{ api: api2.identifier, scopes: ['x:read'] }])).name]);
    const ask = () => postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, client);
    expect((await ask()).status).toBe(200);
    await updateApi(tdb.database.db, api2.id, { requireDpop: true }, NO_AUDIT);
    expect((await ask()).body.error).toBe('invalid_request');
    await updateApi(tdb.database.db, api2.id, { requireDpop: false }, NO_AUDIT);
    expect((await ask()).status).toBe(200);
  });

  it('per client (dpop_bound_access_tokens): a token request without a proof is 400 invalid_request', async () => {
    const reader = await role(tdb.database.db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
    const { client, clientSecret } = await createClient(tdb.database.db, { name: unique('dpop'), roles: [reader.name], requireDpop: true }, NO_AUDIT);
    expect(client.requireDpop).toBe(true);
    const credentials = { id: client.clientId, secret: clientSecret! };
    const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, credentials);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this client (RFC 9449)' });
    const tokens = await dpopToken(credentials, oauth.DPoP({}, await generateKeyPair('ES256')), {});
    expect(tokens.token_type).toBe('dpop');
  });

  it('refuses the built-in urn:postern API', async () => {
    await expect(updateApi(tdb.database.db, 'urn:postern', { requireDpop: true }, NO_AUDIT)).rejects.toMatchObject({ code: 'forbidden' });
  });
});

describe('DPoP proofs and nonces', () => {
  it('asks for a nonce first (use_dpop_nonce, RFC 9449 §8), then accepts the proof carrying it', async () => {
    const key = await proofKey();
    const url = `${server.url}/token`;
    const form = { grant_type: 'client_credentials', resource: orders.identifier };
    const first = await postWithProof(url, form, billing, await proof(key, url));
    expect(first.status).toBe(400);
    expect(first.body).toEqual({ error: 'use_dpop_nonce', error_description: 'nonce is required in the DPoP proof' });
    const nonce = first.headers.get('dpop-nonce');
    expect(nonce).toBeTruthy();
    const second = await postWithProof(url, form, billing, await proof(key, url, { nonce }));
    expect(second.status).toBe(200);
    expect(second.body.token_type).toBe('DPoP');
  });

  it('refuses a proof for another URL, a replayed proof, and a made-up nonce (invalid_dpop_proof / use_dpop_nonce)', async () => {
    const key = await proofKey();
    const url = `${server.url}/token`;
    const form = { grant_type: 'client_credentials', resource: orders.identifier };
    const nonce = (await postWithProof(url, form, billing, await proof(key, url))).headers.get('dpop-nonce')!;

    const elsewhere = await postWithProof(url, form, billing, await proof(key, 'https://other.example/token', { nonce }));
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.body).toEqual({ error: 'invalid_dpop_proof', error_description: 'DPoP proof htu mismatch' });

    const once = await proof(key, url, { nonce });
    expect((await postWithProof(url, form, billing, once)).status).toBe(200);
    const replay = await postWithProof(url, form, billing, once);
    expect(replay.status).toBe(400);
    expect(replay.body).toEqual({ error: 'invalid_dpop_proof', error_description: 'this DPoP proof was used before (RFC 9449 §11.1)' });
    // Sent in parallel, one proof still gets exactly one token.
    const shared = await proof(key, url, { nonce });
    const parallel = await Promise.all(Array.from({ length: 6 }, () => postWithProof(url, form, billing, shared)));
    expect(parallel.map((answer) => answer.status).sort()).toEqual([200, 400, 400, 400, 400, 400]);

    const madeUp = await postWithProof(url, form, billing, await proof(key, url, { nonce: 'x'.repeat(43) }));
    expect(madeUp.status).toBe(400);
    expect(madeUp.body.error).toBe('use_dpop_nonce');
  });

  it('an unsigned or malformed DPoP header is invalid_dpop_proof, never a 500', async () => {
    const url = `${server.url}/token`;
    for (const header of ['not-a-jwt', 'a.b.c', `${Buffer.from('{"alg":"none","typ":"dpop+jwt"}').toString('base64url')}.e30.`]) {
      const res = await postWithProof(url, { grant_type: 'client_credentials' }, billing, header);
      expect(res.status, header).toBe(400);
      expect(res.body.error, header).toBe('invalid_dpop_proof');
    }
  });
});

describe('how long a proof is good for (RFC 9449 §11.1)', () => {
  it('with a nonce Postern issued, the nonce bounds it, whatever the iat', async () => {
    const key = await proofKey();
    const url = `${server.url}/token`;
    const form = { grant_type: 'client_credentials', resource: orders.identifier };
    const nonce = (await postWithProof(url, form, billing, await proof(key, url))).headers.get('dpop-nonce')!;
    const hourOld = await proof(key, url, { nonce, iat: Math.floor(Date.now() / 1000) - 3600 });
    expect((await postWithProof(url, form, billing, hourOld)).status).toBe(200);
    // Without a nonce, an iat further than 300 s from the server's clock is not recent enough:
    // the client is told to use a nonce.
    const relaxed = await startServer(tdb.database, { DPOP_REQUIRE_NONCE: 'false' });
    try {
      const relaxedUrl = `${relaxed.url}/token`;
      // Well past 300 s either way: a loaded machine may take seconds between making and checking a proof.
      for (const offset of [-360, 360]) {
        const far = await postWithProof(relaxedUrl, form, billing, await proof(key, relaxedUrl, { iat: Math.floor(Date.now() / 1000) + offset }));
        expect(far.status, String(offset)).toBe(400);
        expect(far.body, String(offset)).toEqual({
          error: 'use_dpop_nonce', error_description: 'DPoP proof iat is not recent enough, use a DPoP nonce instead',
        });
        expect(far.headers.get('dpop-nonce'), String(offset)).toBeTruthy();
      }
    } finally {
      await relaxed.close();
    }
  });

  it('without nonces, a used proof is refused for as long as its iat would let it through', async () => {
    const relaxed = await startServer(tdb.database, { DPOP_REQUIRE_NONCE: 'false' });
    try {
      const key = await proofKey();
      const url = `${relaxed.url}/token`;
      const form = { grant_type: 'client_credentials', resource: orders.identifier };
      // First used when the server's clock read 300 s before the proof's iat (as early as it is
      // accepted), then again 305 s later, when it is still within 300 s of its iat.
      const iat = Math.floor(Date.now() / 1000) - 5;
      const early = await proof(key, url, { iat });
      vi.useFakeTimers({ toFake: ['Date'] });
      let first: Awaited<ReturnType<typeof postWithProof>>;
      try {
        vi.setSystemTime((iat - 300) * 1000);
        first = await postWithProof(url, form, billing, early);
      } finally {
        vi.useRealTimers();
      }
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      const replay = await postWithProof(url, form, billing, early);
      expect(replay.status).toBe(400);
      expect(replay.body).toEqual({ error: 'invalid_dpop_proof', error_description: 'this DPoP proof was used before (RFC 9449 §11.1)' });
    } finally {
      await relaxed.close();
    }
  });
});

describe.runIf(onPostgres)('DPoP nonces across processes (two servers on one Postgres)', () => {
  it('accepts at one process a nonce another issued', async () => {
    const env = (port: number) => ({
      DATABASE_URL: tdb.url, PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}`,
      LOG_LEVEL: 'warn', POSTERN_MASTER_KEY: TEST_MASTER_KEY,
    });
    const [portA, portB] = [await freePort(), await freePort()];
    // One after the other: the first start of a database creates its keys.
    const a = new ServerProcess(env(portA));
    await a.waitUntilHealthy(`http://127.0.0.1:${portA}`, 60_000);
    const b = new ServerProcess(env(portB));
    await b.waitUntilHealthy(`http://127.0.0.1:${portB}`, 60_000);

    const key = await proofKey();
    const form = { grant_type: 'client_credentials', resource: orders.identifier };
    const urlA = `http://127.0.0.1:${portA}/token`;
    const urlB = `http://127.0.0.1:${portB}/token`;
    const fromA = await postWithProof(urlA, form, billing, await proof(key, urlA));
    expect(fromA.body.error).toBe('use_dpop_nonce');
    const nonce = fromA.headers.get('dpop-nonce')!;
    const atB = await postWithProof(urlB, form, billing, await proof(key, urlB, { nonce }));
    expect(atB.status, JSON.stringify(atB.body)).toBe(200);
    expect(atB.body.token_type).toBe('DPoP');
    // And the other way round, with a nonce B hands out.
    const fromB = (await postWithProof(urlB, form, billing, await proof(key, urlB))).headers.get('dpop-nonce')!;
    expect((await postWithProof(urlA, form, billing, await proof(key, urlA, { nonce: fromB }))).status).toBe(200);
    await a.stop();
    await b.stop();
  }, 120_000);
});
