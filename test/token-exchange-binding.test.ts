// Token exchange (RFC 8693) binds the new token as any token of the client and API is bound, over
// real HTTP and real TLS: to the key of a DPoP proof sent with the request (RFC 9449: cnf.jkt,
// token_type DPoP, JWT and opaque, the proof checked as for client credentials: method, URL,
// nonce, each proof once), refused without a proof where the API or client requires DPoP, and
// to the client's certificate where its tokens are certificate-bound (RFC 8705: cnf.x5t#S256).
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { RouteTable, type RouteRule } from '../src/domain/routes.ts';
import { PROOF_REFUSALS, TOKEN_DPOP_ALGS } from '../src/oidc/token-dpop.ts';
import { loadTlsMaterial } from '../src/platform/tls.ts';
import { createApi, updateApi } from '../src/services/apis.ts';
import { createClient, updateClient } from '../src/services/clients.ts';
import { assignRoleToClient, assignRoleToUser } from '../src/services/roles.ts';
import { createAuthority, selfSigned, tlsRequest, writePem, type Authority, type Issued } from './support/certificates.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { ACCESS_TOKEN_TYPE, exchangeWorld, introspectAs, personToken, TOKEN_EXCHANGE, type ExchangeWorld } from './support/exchange.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { cleanUp, makeTempDir, ROOT } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';

const insecure = { [oauth.allowInsecureRequests]: true } as const;

let tdb: TestDatabase;
let server: TestServer;
let x: ExchangeWorld;
/** An API whose tokens must be DPoP-bound, which the front service may exchange for. */
let bound: Awaited<ReturnType<typeof api>>;

type Client = { id: string; secret: string };
type ProofKey = { privateKey: CryptoKey; publicJwk: JWK };
type Answer = { status: number; headers: Headers; body: any };

const rule = (fields: Pick<RouteRule, 'id' | 'api' | 'host'>): RouteRule => ({
  path: '/*', methods: [], public: false, scopesAll: [], scopesAny: [], roles: [], clients: [],
  senderConstrained: null, rateLimitPerMinute: null, cacheSeconds: null, ...fields,
});

async function proofKey(): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, publicJwk: await exportJWK(publicKey) };
}

/** A DPoP proof made by hand (RFC 9449 §4.2): POST to `htu`, issued now, unless the claims say otherwise. */
function proof(key: ProofKey, htu: string, claims: Record<string, unknown> = {}): Promise<string> {
  const { iat, ...rest } = claims;
  return new SignJWT({ htm: 'POST', htu, jti: randomUUID(), ...rest })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt(typeof iat === 'number' ? iat : undefined)
    .sign(key.privateKey);
}

/** A token request with client_secret_basic and, when given, a DPoP header. */
async function post(url: string, form: Record<string, string>, client: Client, dpop?: string): Promise<Answer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`,
      ...(dpop ? { dpop } : {}),
    },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

const exchangeForm = (subject: string, extra: Record<string, string>) =>
  ({ grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, ...extra });

/** The nonce Postern hands out (RFC 9449 §8), asked for with a proof that has none. */
async function nonceFrom(url: string, form: Record<string, string>, client: Client, key: ProofKey): Promise<string> {
  const asked = await post(url, form, client, await proof(key, url));
  expect(asked.body).toEqual({ error: 'use_dpop_nonce', error_description: 'nonce is required in the DPoP proof' });
  return asked.headers.get('dpop-nonce')!;
}

/** An exchange with a proof by `key` that carries a nonce Postern issued. */
async function boundExchange(client: Client, subject: string, extra: Record<string, string>, key: ProofKey): Promise<Answer> {
  const url = `${server.url}/token`;
  const form = exchangeForm(subject, extra);
  return post(url, form, client, await proof(key, url, { nonce: await nonceFrom(url, form, client, key) }));
}

/** What nginx's auth_request sends the decision endpoint for GET https://`host`/things/1. */
function gate(host: string, authorization: string, dpop?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: url.hostname, port: url.port, method: 'GET', path: '/gate/auth-request',
      headers: {
        'x-original-method': 'GET', 'x-original-uri': '/things/1', 'x-forwarded-host': host, 'x-forwarded-proto': 'https',
        authorization, ...(dpop ? { dpop } : {}),
      },
    }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers }));
    });
    request.on('error', reject);
    request.end();
  });
}

/** RFC 9449 §4.2: the hash of the access token a proof to a resource goes with. */
const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

beforeAll(async () => {
  tdb = await createTestDatabase();
  const { db } = tdb.database;
  x = await exchangeWorld(db);
  bound = await api(db, { scopes: ['vault:open'], requireDpop: true });
  const opener = await role(db, [{ api: bound.identifier, scopes: ['vault:open'] }]);
  await assignRoleToUser(db, opener.name, x.world.username, NO_AUDIT);
  await updateClient(db, x.front.name, {
    mayExchange: [
      { api: x.payments.identifier, scopes: ['payments:charge', 'payments:refund'] },
      { api: bound.identifier, scopes: ['vault:open'] },
    ],
  }, NO_AUDIT);
  // The front service may also get tokens of its own (client credentials), for the archive.
  await assignRoleToClient(db, (await role(db, [{ api: x.archive.identifier, scopes: ['archive:write'] }])).name, x.front.name, NO_AUDIT);
  server = await startServer(tdb.database, {}, '', {
    gateRoutes: new RouteTable([
      rule({ id: 'payments', api: x.payments.identifier, host: 'payments.example' }),
      rule({ id: 'ledger', api: x.ledger.identifier, host: 'ledger.example' }),
    ]),
  });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
  await cleanUp();
});

describe('DPoP-bound exchanged tokens (RFC 9449)', () => {
  it('checks proofs with the provider\'s algorithms and answers with its words', async () => {
    const source = fs.readFileSync(path.join(ROOT, 'node_modules/oidc-provider/lib/helpers/validate_dpop.js'), 'utf8');
    const missing = Object.values(PROOF_REFUSALS).filter((text) => !source.includes(`'${text}'`));
    expect(missing, 'texts of token-dpop.ts no longer in the installed oidc-provider').toEqual([]);
    const discovery = await (await fetch(`${server.url}/.well-known/openid-configuration`)).json() as { dpop_signing_alg_values_supported: string[] };
    expect(discovery.dpop_signing_alg_values_supported).toEqual(TOKEN_DPOP_ALGS);
  });

  it('with oauth4webapi\'s DPoP handle: a JWT bound to the key (cnf.jkt, token_type DPoP), shown by introspection', async () => {
    const issuer = new URL(server.url);
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, insecure));
    const keyPair = await generateKeyPair('ES256');
    const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
    const dpop = oauth.DPoP({}, keyPair);
    const subject = await personToken(server.url, x);
    const client = { client_id: x.front.id };
    const request = () => oauth.genericTokenEndpointRequest(as, client, oauth.ClientSecretBasic(x.front.secret), TOKEN_EXCHANGE, {
      subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: x.payments.identifier,
    }, { ...insecure, DPoP: dpop });
    // The first proof carries no nonce: Postern asks for one (RFC 9449 §8), the library retries with it.
    const first = await oauth.processGenericTokenEndpointResponse(as, client, await request()).catch((error: unknown) => error);
    expect(oauth.isDPoPNonceError(first), String(first)).toBe(true);
    const result = await oauth.processGenericTokenEndpointResponse(as, client, await request());
    expect(result).toMatchObject({ token_type: 'dpop', scope: 'payments:charge', issued_token_type: ACCESS_TOKEN_TYPE });
    const claims = decodeJwt(result.access_token);
    expect(claims).toMatchObject({ sub: x.world.user.id, client_id: x.front.id, act: { sub: x.front.id }, cnf: { jkt } });
    const seen = await introspectAs(server.url, x.front, result.access_token);
    expect(seen.body).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt }, act: { sub: x.front.id } });
  });

  it('an opaque token too: introspection shows cnf.jkt', async () => {
    const key = await proofKey();
    const toPayments = await boundExchange(x.front, await personToken(server.url, x), { resource: x.payments.identifier }, key);
    expect(toPayments.status, JSON.stringify(toPayments.body)).toBe(200);
    // The payments service exchanges the DPoP-bound token it received, with a key of its own.
    const own = await proofKey();
    const toLedger = await boundExchange(x.paymentsService, toPayments.body.access_token, { resource: x.ledger.identifier }, own);
    expect(toLedger.status, JSON.stringify(toLedger.body)).toBe(200);
    expect(toLedger.body).toMatchObject({ token_type: 'DPoP', issued_token_type: ACCESS_TOKEN_TYPE, scope: 'ledger:read' });
    expect(toLedger.body.access_token.split('.')).toHaveLength(1);
    const seen = await introspectAs(server.url, x.paymentsService, toLedger.body.access_token);
    expect(seen.body).toMatchObject({
      active: true, token_type: 'DPoP', cnf: { jkt: await calculateJwkThumbprint(own.publicJwk) },
      act: { sub: x.paymentsService.id, act: { sub: x.front.id } },
    });
  });

  it('the gate takes a bound exchanged token only with a proof by its key, JWT or opaque', async () => {
    const key = await proofKey();
    const toPayments = await boundExchange(x.front, await personToken(server.url, x), { resource: x.payments.identifier }, key);
    const own = await proofKey();
    const toLedger = await boundExchange(x.paymentsService, toPayments.body.access_token, { resource: x.ledger.identifier }, own);
    for (const [host, token, holder] of [
      ['payments.example', toPayments.body.access_token as string, key],
      ['ledger.example', toLedger.body.access_token as string, own],
    ] as const) {
      // RFC 9449 §7.2: presented as a Bearer token, or without a proof, it is refused.
      const asBearer = await gate(host, `Bearer ${token}`);
      expect(asBearer.status, host).toBe(401);
      expect(asBearer.headers['www-authenticate'], host).toMatch(/^Bearer error="invalid_token"/);
      expect((await gate(host, `DPoP ${token}`)).status, host).toBe(401);
      const stranger = await proof(await proofKey(), `https://${host}/things/1`, { htm: 'GET', ath: ath(token) });
      expect((await gate(host, `DPoP ${token}`, stranger)).status, host).toBe(401);
      const good = await proof(holder, `https://${host}/things/1`, { htm: 'GET', ath: ath(token) });
      const allowed = await gate(host, `DPoP ${token}`, good);
      expect(allowed.status, host).toBe(200);
      expect(allowed.headers['x-postern-subject'], host).toBe(x.world.user.id);
    }
  });

  it('refuses a replayed proof, one spent on client credentials, and one sent with parallel requests more than once', async () => {
    const key = await proofKey();
    const url = `${server.url}/token`;
    const subject = await personToken(server.url, x);
    const form = exchangeForm(subject, { resource: x.payments.identifier });
    const nonce = await nonceFrom(url, form, x.front, key);
    const replayed = { error: 'invalid_dpop_proof', error_description: 'this DPoP proof was used before (RFC 9449 §11.1)' };

    const once = await proof(key, url, { nonce });
    expect((await post(url, form, x.front, once)).status).toBe(200);
    const again = await post(url, form, x.front, once);
    expect(again.status).toBe(400);
    expect(again.body).toEqual(replayed);

    // One record of spent proofs for every grant: a proof used for client credentials is spent.
    const shared = await proof(key, url, { nonce });
    const own = await post(url, { grant_type: 'client_credentials', resource: x.archive.identifier }, x.front, shared);
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(own.body.token_type).toBe('DPoP');
    expect((await post(url, form, x.front, shared)).body).toEqual(replayed);

    const parallel = await proof(key, url, { nonce });
    const answers = await Promise.all(Array.from({ length: 5 }, () => post(url, form, x.front, parallel)));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 400, 400, 400, 400]);
  });

  it('refuses a proof for another URL or method, or not a proof at all (invalid_dpop_proof)', async () => {
    const key = await proofKey();
    const url = `${server.url}/token`;
    const form = exchangeForm(await personToken(server.url, x), { resource: x.payments.identifier });
    const nonce = await nonceFrom(url, form, x.front, key);
    const refusals: [string, string, string][] = [
      ['another URL', await proof(key, 'https://elsewhere.example/token', { nonce }), 'DPoP proof htu mismatch'],
      ['another endpoint of Postern', await proof(key, `${server.url}/token/introspection`, { nonce }), 'DPoP proof htu mismatch'],
      ['another method', await proof(key, url, { nonce, htm: 'GET' }), 'DPoP proof htm mismatch'],
      ['not a JWT', 'x.y.z', 'invalid DPoP key binding'],
      ['no jti', await proof(key, url, { nonce, jti: undefined }), 'DPoP proof must have a jti string property'],
    ];
    for (const [what, header, description] of refusals) {
      const res = await post(url, form, x.front, header);
      expect(res.status, what).toBe(400);
      expect(res.body, what).toEqual({ error: 'invalid_dpop_proof', error_description: description });
    }
    // The query of htu is not compared (RFC 9449 §4.3): the same URL with one is accepted.
    expect((await post(url, form, x.front, await proof(key, `${url}?x=1`, { nonce }))).status).toBe(200);
  });

  it('shares nonces with the provider\'s own grants, both ways, and refuses one it did not issue', async () => {
    const key = await proofKey();
    const url = `${server.url}/token`;
    const form = exchangeForm(await personToken(server.url, x), { resource: x.payments.identifier });
    const ownForm = { grant_type: 'client_credentials', resource: x.archive.identifier };
    const fromClientCredentials = await nonceFrom(url, ownForm, x.front, key);
    const exchanged = await post(url, form, x.front, await proof(key, url, { nonce: fromClientCredentials }));
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    const fromExchange = await nonceFrom(url, form, x.front, key);
    expect((await post(url, ownForm, x.front, await proof(key, url, { nonce: fromExchange }))).status).toBe(200);

    const madeUp = await post(url, form, x.front, await proof(key, url, { nonce: 'x'.repeat(43) }));
    expect(madeUp.status).toBe(400);
    expect(madeUp.body).toEqual({ error: 'use_dpop_nonce', error_description: 'invalid nonce in DPoP proof' });
    expect(madeUp.headers.get('dpop-nonce')).toBeTruthy();
  });

  it('without DPOP_REQUIRE_NONCE, takes a recent proof without a nonce and asks one with an old iat for a nonce', async () => {
    const relaxed = await startServer(tdb.database, { DPOP_REQUIRE_NONCE: 'false' });
    try {
      const key = await proofKey();
      const url = `${relaxed.url}/token`;
      const form = exchangeForm(await personToken(relaxed.url, x), { resource: x.payments.identifier });
      const res = await post(url, form, x.front, await proof(key, url));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(decodeJwt(res.body.access_token).cnf).toEqual({ jkt: await calculateJwkThumbprint(key.publicJwk) });
      const old = await post(url, form, x.front, await proof(key, url, { iat: Math.floor(Date.now() / 1000) - 360 }));
      expect(old.body).toEqual({ error: 'use_dpop_nonce', error_description: 'DPoP proof iat is not recent enough, use a DPoP nonce instead' });
      expect(old.headers.get('dpop-nonce')).toBeTruthy();
    } finally {
      await relaxed.close();
    }
  });
});

describe('requiring DPoP', () => {
  it('per API: an exchange without a proof is refused as client credentials are (400 invalid_request)', async () => {
    const subject = await personToken(server.url, x);
    const url = `${server.url}/token`;
    const refused = await post(url, exchangeForm(subject, { resource: bound.identifier }), x.front);
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this resource (RFC 9449)' });
    // The same answer as the client-credentials grant gives for that API.
    const holder = await serviceClient(tdb.database.db, [(await role(tdb.database.db, [{ api: bound.identifier, scopes: ['vault:open'] }])).name]);
    const own = await post(url, { grant_type: 'client_credentials', resource: bound.identifier }, holder);
    expect(own.status).toBe(refused.status);
    expect(own.body).toEqual(refused.body);

    const key = await proofKey();
    const res = await boundExchange(x.front, subject, { resource: bound.identifier }, key);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.token_type).toBe('DPoP');
    expect(decodeJwt(res.body.access_token).cnf).toEqual({ jkt: await calculateJwkThumbprint(key.publicJwk) });
  });

  it('per client (dpop_bound_access_tokens): an exchange without a proof is refused as client credentials are', async () => {
    const subject = await personToken(server.url, x);
    const url = `${server.url}/token`;
    await updateClient(tdb.database.db, x.front.name, { requireDpop: true }, NO_AUDIT);
    try {
      const refused = await post(url, exchangeForm(subject, { resource: x.payments.identifier }), x.front);
      expect(refused.status).toBe(400);
      expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a DPoP proof is required for this client (RFC 9449)' });
      const own = await post(url, { grant_type: 'client_credentials', resource: x.archive.identifier }, x.front);
      expect(own.body).toEqual(refused.body);
      const res = await boundExchange(x.front, subject, { resource: x.payments.identifier }, await proofKey());
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.token_type).toBe('DPoP');
    } finally {
      await updateClient(tdb.database.db, x.front.name, { requireDpop: false }, NO_AUDIT);
    }
  });
});

describe('certificate-bound exchanged tokens (RFC 8705), over TLS', () => {
  let dir: string;
  let ca: Authority;
  let tlsServer: TestServer;
  let payments: Awaited<ReturnType<typeof api>>;
  let ledger: Awaited<ReturnType<typeof api>>;
  let caller: Client;
  let shopId: string;
  let shopCert: Issued;
  let shopApi: string;

  /** A token request over TLS, presenting `cert` when given, with Basic credentials when given. */
  const tokenRequest = (form: Record<string, string>, cert?: Issued, basic?: Client) => tlsRequest(`${tlsServer.url}/token`, {
    ca: ca.cert, client: cert, form,
    headers: basic ? { authorization: `Basic ${Buffer.from(`${basic.id}:${basic.secret}`).toString('base64')}` } : {},
  });

  /** The caller's own token for the shop API: what the shop service receives and exchanges. */
  const callerToken = async () => {
    const res = await tokenRequest({ grant_type: 'client_credentials', resource: shopApi }, undefined, caller);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return (res.body as { access_token: string }).access_token;
  };

  beforeAll(async () => {
    const { db } = tdb.database;
    dir = makeTempDir('postern-exchange-mtls-');
    ca = await createAuthority();
    const serverCert = await ca.issue('CN=127.0.0.1', { server: true, san: [{ type: 'ip', value: '127.0.0.1' }] });
    tlsServer = await startServer(tdb.database, {}, '', {
      tls: loadTlsMaterial({
        tls: { certFile: writePem(dir, 'server.pem', serverCert.cert), keyFile: writePem(dir, 'server.key', serverCert.key) },
        mtls: { caFile: writePem(dir, 'ca.pem', ca.cert), header: undefined, proxies: [] },
      }),
    });
    payments = await api(db, { scopes: ['pay:charge'] });
    ledger = await api(db, { scopes: ['book:read'], tokenFormat: 'opaque' });
    const shop = await createApi(db, { identifier: `https://${unique('shop')}.internal`, scopes: ['shop:use'] }, NO_AUDIT);
    shopApi = shop.identifier;
    // The caller (a service with a secret) holds scopes on all three; the shop service, which
    // authenticates with its CA-issued certificate (tls_client_auth, its tokens bound to it),
    // serves the shop API and may exchange its callers' tokens for payments and the ledger.
    const holdings = await role(db, [
      { api: shopApi, scopes: ['shop:use'] }, { api: payments.identifier, scopes: ['pay:charge'] }, { api: ledger.identifier, scopes: ['book:read'] },
    ]);
    caller = await serviceClient(db, [holdings.name]);
    shopCert = await ca.issue('CN=shop,O=Example');
    const { client } = await createClient(db, {
      name: unique('shop'), tlsSubject: { field: 'subject_dn', value: 'CN=shop,O=Example' },
      mayExchange: [{ api: payments.identifier, scopes: ['pay:charge'] }, { api: ledger.identifier, scopes: ['book:read'] }],
    }, NO_AUDIT);
    expect(client.requireMtls).toBe(true);
    shopId = client.clientId;
    await updateApi(db, shopApi, { owner: client.name }, NO_AUDIT);
  }, 60_000);

  afterAll(async () => {
    await tlsServer?.close();
  });

  it('binds the new token to the certificate the client authenticated with, JWT or opaque', async () => {
    const subject = await callerToken();
    const toPayments = await tokenRequest(
      { ...exchangeForm(subject, { resource: payments.identifier }), client_id: shopId }, shopCert);
    expect(toPayments.status, JSON.stringify(toPayments.body)).toBe(200);
    const body = toPayments.body as { access_token: string; token_type: string };
    expect(body.token_type).toBe('Bearer');
    expect(decodeJwt(body.access_token)).toMatchObject({ sub: caller.id, act: { sub: shopId }, cnf: { 'x5t#S256': shopCert.thumbprint } });

    const toLedger = await tokenRequest({ ...exchangeForm(subject, { resource: ledger.identifier }), client_id: shopId }, shopCert);
    expect(toLedger.status, JSON.stringify(toLedger.body)).toBe(200);
    const opaque = (toLedger.body as { access_token: string }).access_token;
    expect(opaque.split('.')).toHaveLength(1);
    const seen = await tlsRequest(`${tlsServer.url}/token/introspection`, { ca: ca.cert, client: shopCert, form: { client_id: shopId, token: opaque } });
    expect(seen.body).toMatchObject({ active: true, sub: caller.id, act: { sub: shopId }, cnf: { 'x5t#S256': shopCert.thumbprint } });
  });

  it('a client with a secret whose tokens are certificate-bound: refused without a certificate, bound to the one it presents', async () => {
    const { db } = tdb.database;
    const { client, clientSecret } = await createClient(db, {
      name: unique('shop-secret'), requireMtls: true, mayExchange: [{ api: payments.identifier, scopes: ['pay:charge'] }],
    }, NO_AUDIT);
    const service = { id: client.clientId, secret: clientSecret! };
    const other = await api(db, { scopes: ['other:use'] });
    await updateApi(db, other.identifier, { owner: client.name }, NO_AUDIT);
    await assignRoleToClient(db, (await role(db, [{ api: other.identifier, scopes: ['other:use'] }])).name, caller.id, NO_AUDIT);
    const own = await tokenRequest({ grant_type: 'client_credentials', resource: other.identifier }, undefined, caller);
    const subject = (own.body as { access_token: string }).access_token;
    const form = exchangeForm(subject, { resource: payments.identifier });

    const refused = await tokenRequest(form, undefined, service);
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'invalid_request', error_description: 'a client certificate is required for this client (RFC 8705)' });
    const cert = await selfSigned('CN=shop-secret');
    const res = await tokenRequest(form, cert, service);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(decodeJwt((res.body as { access_token: string }).access_token).cnf).toEqual({ 'x5t#S256': cert.thumbprint });
  });
});
