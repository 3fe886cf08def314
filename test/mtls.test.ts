// Mutual TLS (RFC 8705), end to end over real TLS with certificates made here: tls_client_auth
// (subject DN and SAN entries, only from a configured CA), self_signed_tls_client_auth, tokens
// bound to the certificate (cnf.x5t#S256) and refused with another one where binding is checked,
// the per-API and per-client requirement, and certificates forwarded by a trusted proxy. The
// server process with TLS files of its own: mtls-listener.test.ts.
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_SCOPES, POSTERN_API } from '../src/services/admin.ts';
import { updateApi } from '../src/services/apis.ts';
import { createClient, updateClient } from '../src/services/clients.ts';
import { createRole } from '../src/services/roles.ts';
import { loadTlsMaterial } from '../src/platform/tls.ts';
import { createAuthority, selfSigned, tlsRequest, writePem, type Authority, type Issued } from './support/certificates.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { cleanUp, makeTempDir } from './support/process.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { CALLBACK, signIn, signInWorld } from './support/sign-in.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;
let ca: Authority;
let serverCert: Issued;
let orders: Awaited<ReturnType<typeof api>>;
let readers: Awaited<ReturnType<typeof role>>;
let dir: string;

/** A client-credentials request over TLS, presenting `cert` when given. */
function tokenRequest(clientId: string, cert?: Issued, form: Record<string, string> = {}) {
  return tlsRequest(`${server.url}/token`, {
    ca: ca.cert, client: cert, form: { grant_type: 'client_credentials', client_id: clientId, ...form },
  });
}

async function certificateClient(input: Parameters<typeof createClient>[1]) {
  const { client } = await createClient(tdb.database.db, { roles: [readers.name], ...input }, NO_AUDIT);
  return client.clientId;
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  dir = makeTempDir('postern-mtls-');
  ca = await createAuthority();
  serverCert = await ca.issue('CN=127.0.0.1', { server: true, san: [{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }] });
  const tls = {
    tls: { certFile: writePem(dir, 'server.pem', serverCert.cert), keyFile: writePem(dir, 'server.key', serverCert.key) },
    mtls: { caFile: writePem(dir, 'ca.pem', ca.cert), header: undefined, proxies: [] },
  };
  server = await startServer(tdb.database, {}, '', { tls: loadTlsMaterial(tls) });
  orders = await api(tdb.database.db, { scopes: ['orders:read'] });
  readers = await role(tdb.database.db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
  await cleanUp();
});

describe('tls_client_auth (RFC 8705 §2.1)', () => {
  let ordersId: string;
  let ordersCert: Issued;

  beforeAll(async () => {
    ordersCert = await ca.issue('CN=orders,O=Example', { san: [{ type: 'dns', value: 'orders.internal' }] });
    ordersId = await certificateClient({ name: unique('orders'), tlsSubject: { field: 'subject_dn', value: 'CN=orders,O=Example' } });
  });

  it('gives a client presenting a CA-issued certificate with its subject a token bound to that certificate', async () => {
    const res = await tokenRequest(ordersId, ordersCert);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.token_type).toBe('Bearer');
    const jwks = await tlsRequest(`${server.url}/jwks`, { ca: ca.cert });
    const { payload } = await jwtVerify(res.body.access_token, createLocalJWKSet(jwks.body as { keys: JWK[] }), {
      issuer: server.url, audience: orders.identifier, typ: 'at+jwt',
    });
    expect(payload.client_id).toBe(ordersId);
    expect(payload.cnf).toEqual({ 'x5t#S256': ordersCert.thumbprint });
  });

  it('returns cnf from introspection (RFC 8705 §3.2)', async () => {
    const token = (await tokenRequest(ordersId, ordersCert)).body.access_token as string;
    const res = await tlsRequest(`${server.url}/token/introspection`, {
      ca: ca.cert, client: ordersCert, form: { client_id: ordersId, token },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, client_id: ordersId, cnf: { 'x5t#S256': ordersCert.thumbprint } });
  });

  it('refuses it without a certificate, with another subject, from another CA, or expired (401 invalid_client)', async () => {
    const other = await createAuthority('CN=Somebody Else CA');
    const cases: [string, Issued | undefined][] = [
      ['no certificate', undefined],
      ['another subject', await ca.issue('CN=billing,O=Example')],
      ['the same subject from a CA Postern does not trust', await other.issue('CN=orders,O=Example')],
      ['an expired certificate', await ca.issue('CN=orders,O=Example', { days: -1 })],
      ['a self-signed certificate with the subject', await selfSigned('CN=orders,O=Example')],
    ];
    for (const [what, cert] of cases) {
      const res = await tokenRequest(ordersId, cert);
      expect(res.status, what).toBe(401);
      expect(res.body.error, what).toBe('invalid_client');
    }
  });

  it('accepts a certificate issued by an intermediate CA the client sends along', async () => {
    const team = await ca.intermediate('CN=Team CA,O=Example');
    const cert = await team.issue('CN=inventory,O=Example');
    const id = await certificateClient({ name: unique('inventory'), tlsSubject: { field: 'subject_dn', value: 'CN=inventory,O=Example' } });
    const res = await tokenRequest(id, cert);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(decodeJwt(res.body.access_token).cnf).toEqual({ 'x5t#S256': cert.thumbprint });
  });

  it('stops trusting a CA taken out of the CA file, on connections already open too', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const overOneConnection = () => tlsRequest(`${server.url}/token`, {
      ca: ca.cert, client: ordersCert, agent, form: { grant_type: 'client_credentials', client_id: ordersId },
    });
    try {
      expect((await overOneConnection()).status).toBe(200);
      // The file now holds another CA only.
      server.app.clientCertificates.setAuthorities([new X509Certificate((await createAuthority('CN=Replacement CA')).cert)]);
      expect((await overOneConnection()).status).toBe(401);
    } finally {
      server.app.clientCertificates.setAuthorities([new X509Certificate(ca.cert)]);
      agent.destroy();
    }
    expect((await tokenRequest(ordersId, ordersCert)).status).toBe(200);
  });

  it('matches a subject DN whatever the order and escaping of its attributes', async () => {
    const cert = await ca.issue('C=DE,O=Acme\\, Inc.,OU=payments,CN=ledger');
    const id = await certificateClient({ name: unique('ledger'), tlsSubject: { field: 'subject_dn', value: 'CN=ledger,OU=payments,O=Acme\\, Inc.,C=DE' } });
    expect((await tokenRequest(id, cert)).status).toBe(200);
    // One attribute more or less is another subject.
    expect((await tokenRequest(id, await ca.issue('C=DE,O=Acme\\, Inc.,CN=ledger'))).status).toBe(401);
  });

  it('matches a SAN entry: DNS name, IP address, URI (a SPIFFE ID), email address', async () => {
    const cert = await ca.issue('CN=anything', {
      san: [
        { type: 'dns', value: 'stock.internal' }, { type: 'ip', value: '10.1.2.3' },
        { type: 'url', value: 'spiffe://example.org/ns/shop/sa/stock' }, { type: 'email', value: 'stock@example.org' },
      ],
    });
    for (const [field, value, wrong] of [
      ['san_dns', 'stock.internal', 'other.internal'],
      ['san_ip', '10.1.2.3', '10.1.2.4'],
      ['san_uri', 'spiffe://example.org/ns/shop/sa/stock', 'spiffe://example.org/ns/shop/sa/other'],
      ['san_email', 'stock@example.org', 'other@example.org'],
    ] as const) {
      const good = await certificateClient({ name: unique(field), tlsSubject: { field, value } });
      expect((await tokenRequest(good, cert)).status, field).toBe(200);
      const bad = await certificateClient({ name: unique(field), tlsSubject: { field, value: wrong } });
      expect((await tokenRequest(bad, cert)).status, `${field} ${wrong}`).toBe(401);
    }
  });
});

describe('self_signed_tls_client_auth (RFC 8705 §2.2)', () => {
  it('accepts exactly the registered certificates, and binds the token to the one presented', async () => {
    const [first, second, stranger] = await Promise.all([selfSigned('CN=reports'), selfSigned('CN=reports'), selfSigned('CN=reports')]);
    const id = await certificateClient({ name: unique('reports'), certificates: [first.cert, second.cert] });
    for (const cert of [first, second]) {
      const res = await tokenRequest(id, cert);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(decodeJwt(res.body.access_token).cnf).toEqual({ 'x5t#S256': cert.thumbprint });
    }
    expect((await tokenRequest(id, stranger)).status).toBe(401);
    expect((await tokenRequest(id)).status).toBe(401);

    // Replacing the certificates takes effect at once.
    await updateClient(tdb.database.db, id, { certificates: [stranger.cert] }, NO_AUDIT);
    expect((await tokenRequest(id, first)).status).toBe(401);
    expect((await tokenRequest(id, stranger)).status).toBe(200);
  });

  it('refuses a disabled client presenting its registered certificate: 401 invalid_client', async () => {
    const cert = await selfSigned('CN=disabled');
    const id = await certificateClient({ name: unique('disabled'), certificates: [cert.cert] });
    expect((await tokenRequest(id, cert)).status).toBe(200);
    await updateClient(tdb.database.db, id, { enabled: false }, NO_AUDIT);
    const refused = await tokenRequest(id, cert);
    expect(refused.status).toBe(401);
    expect(refused.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
  });
});

describe('certificate-bound tokens (RFC 8705 §3)', () => {
  it('the admin API accepts a bound token only with the certificate it is bound to', async () => {
    const admins = await createRole(tdb.database.db, { name: unique('admins'), grants: [{ api: POSTERN_API, scopes: ADMIN_SCOPES }] }, NO_AUDIT);
    const cert = await ca.issue('CN=automation,O=Example');
    const { client } = await createClient(tdb.database.db, {
      name: unique('automation'), roles: [admins.name], tlsSubject: { field: 'subject_dn', value: 'CN=automation,O=Example' },
    }, NO_AUDIT);
    const issued = await tokenRequest(client.clientId, cert, { resource: POSTERN_API });
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    const token = issued.body.access_token as string;
    const call = (presented?: Issued) => tlsRequest(`${server.url}/admin/v1/apis`, {
      ca: ca.cert, client: presented, headers: { authorization: `Bearer ${token}` },
    });
    expect((await call(cert)).status).toBe(200);
    expect((await call(await ca.issue('CN=automation,O=Example'))).status).toBe(401);
    expect((await call()).status).toBe(401);
  });

  it('an API that requires them refuses a client that is not registered for them, or sends no certificate', async () => {
    const ledger = await api(tdb.database.db, { scopes: ['ledger:read'], requireMtls: true });
    const ledgerReaders = await role(tdb.database.db, [{ api: ledger.identifier, scopes: ['ledger:read'] }]);
    const billing = await serviceClient(tdb.database.db, [ledgerReaders.name]);
    const cert = await selfSigned('CN=billing');
    const withSecret = (presented?: Issued) => tlsRequest(`${server.url}/token`, {
      ca: ca.cert, client: presented, form: { grant_type: 'client_credentials' },
      headers: { authorization: `Basic ${Buffer.from(`${billing.id}:${billing.secret}`).toString('base64')}` },
    });

    let res = await withSecret(cert);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      error: 'invalid_request',
      error_description: 'tokens for this resource must be bound to a client certificate (RFC 8705), and this client is not registered for certificate-bound tokens',
    });

    // A client with a secret may have its tokens bound to whatever certificate it presents.
    await updateClient(tdb.database.db, billing.id, { requireMtls: true }, NO_AUDIT);
    res = await withSecret();
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: 'a client certificate is required for this resource (RFC 8705)' });
    res = await withSecret(cert);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(decodeJwt(res.body.access_token).cnf).toEqual({ 'x5t#S256': cert.thumbprint });

    // Lifting the requirement: unbound tokens again for clients that do not ask for binding.
    await updateApi(tdb.database.db, ledger.id, { requireMtls: false }, NO_AUDIT);
    await updateClient(tdb.database.db, billing.id, { requireMtls: false }, NO_AUDIT);
    res = await withSecret();
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.access_token).cnf).toBeUndefined();
  });

  it('refuses to bind one client\'s or one API\'s tokens both to DPoP and to a certificate', async () => {
    const db = tdb.database.db;
    const both = 'tokens can be bound to a DPoP key or to a TLS certificate, not both';
    await expect(createClient(db, { name: unique('both'), tlsSubject: { field: 'san_dns', value: 'both.internal' }, requireDpop: true, requireMtls: true }, NO_AUDIT))
      .rejects.toThrow(both);
    // A certificate client that asks for DPoP gets DPoP binding, not both.
    const { client } = await createClient(db, { name: unique('dpop-cert'), tlsSubject: { field: 'san_dns', value: 'dpop.internal' }, requireDpop: true }, NO_AUDIT);
    expect(client).toMatchObject({ requireDpop: true, requireMtls: false });
    await expect(updateClient(db, client.clientId, { requireMtls: true }, NO_AUDIT)).rejects.toThrow(both);
    await expect(api(db, { scopes: ['x:read'], requireDpop: true, requireMtls: true })).rejects.toThrow(both);
    const dpopApi = await api(db, { scopes: ['x:read'], requireDpop: true });
    await expect(updateApi(db, dpopApi.id, { requireMtls: true }, NO_AUDIT)).rejects.toThrow(both);
  });

  it('a certificate client registered without binding gets unbound tokens', async () => {
    const cert = await ca.issue('CN=legacy,O=Example');
    const id = await certificateClient({ name: unique('legacy'), tlsSubject: { field: 'subject_dn', value: 'CN=legacy,O=Example' }, requireMtls: false });
    const res = await tokenRequest(id, cert);
    expect(res.status).toBe(200);
    expect(decodeJwt(res.body.access_token).cnf).toBeUndefined();
  });
});

describe('behind a TLS-terminating proxy', () => {
  let proxied: TestServer;
  let untrusted: TestServer;
  let id: string;
  let cert: Issued;
  const HEADER = 'x-client-cert';

  beforeAll(async () => {
    const authorities = loadTlsMaterial({ tls: undefined, mtls: { caFile: writePem(dir, 'ca-proxy.pem', ca.cert), header: HEADER, proxies: [] } });
    proxied = await startServer(tdb.database, { TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '127.0.0.1' }, '', { tls: authorities });
    untrusted = await startServer(tdb.database, { TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '10.0.0.0/8' }, '', { tls: authorities });
    cert = await ca.issue('CN=payments,O=Example');
    id = await certificateClient({ name: unique('payments'), tlsSubject: { field: 'subject_dn', value: 'CN=payments,O=Example' } });
  });

  afterAll(async () => {
    await proxied?.close();
    await untrusted?.close();
  });

  const viaProxy = (target: TestServer, value: string) => fetch(`${target.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', [HEADER]: value },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: id }).toString(),
  }).then(async (res) => ({ status: res.status, body: await res.json() as Record<string, unknown> }));

  it('takes the certificate from the header (URL-encoded PEM, or base64 DER) when the proxy is trusted', async () => {
    const der = cert.cert.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, '');
    for (const value of [encodeURIComponent(cert.cert), der]) {
      const res = await viaProxy(proxied, value);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(decodeJwt(res.body.access_token as string).cnf).toEqual({ 'x5t#S256': cert.thumbprint });
    }
  });

  it('ignores the header from an address that is not a configured proxy, and a header that is not a certificate', async () => {
    expect((await viaProxy(untrusted, encodeURIComponent(cert.cert))).status).toBe(401);
    const res = await viaProxy(proxied, 'not a certificate');
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });

  it('still verifies the issuer itself: a forwarded certificate from another CA is refused', async () => {
    const other = await (await createAuthority('CN=Elsewhere CA')).issue('CN=payments,O=Example');
    expect((await viaProxy(proxied, encodeURIComponent(other.cert))).status).toBe(401);
  });

  it('binds a person\'s tokens to the web app\'s certificate: userinfo checks it, refresh needs one', async () => {
    const world = await signInWorld(tdb.database.db);
    await updateClient(tdb.database.db, world.client.id, { requireMtls: true }, NO_AUDIT);
    const basic = `Basic ${Buffer.from(`${world.client.id}:${world.client.secret}`).toString('base64')}`;
    const send = (path: string, presented: Issued | undefined, init: { form?: Record<string, string>; bearer?: string }) =>
      fetch(`${proxied.url}${path}`, {
        method: init.form ? 'POST' : 'GET',
        headers: {
          ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded', authorization: basic } : { authorization: `Bearer ${init.bearer}` }),
          ...(presented ? { [HEADER]: encodeURIComponent(presented.cert) } : {}),
        },
        body: init.form ? new URLSearchParams(init.form).toString() : undefined,
      }).then(async (res) => ({ status: res.status, body: await res.json() as Record<string, any> }));
    const appCert = await ca.issue('CN=webapp,O=Example');
    const { code, verifier } = await signIn(proxied.url, world);
    const exchange = { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CALLBACK };

    const required = { error: 'invalid_request', error_description: 'a client certificate is required for this client (RFC 8705)' };
    expect((await send('/token', undefined, { form: exchange })).body).toEqual(required);
    const tokens = await send('/token', appCert, { form: exchange }); // the same code: refused, not spent
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.refresh_token).toBeTruthy();

    expect((await send('/me', appCert, { bearer: tokens.body.access_token })).body.sub).toBe(world.user.id);
    for (const presented of [await ca.issue('CN=webapp,O=Example'), undefined]) {
      const refused = await send('/me', presented, { bearer: tokens.body.access_token });
      expect(refused.status).toBe(401);
      expect(refused.body.error).toBe('invalid_token');
    }

    const refreshForm = { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token };
    expect((await send('/token', undefined, { form: refreshForm })).body).toEqual(required);
    const refreshed = await send('/token', appCert, { form: refreshForm });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect((await send('/me', appCert, { bearer: refreshed.body.access_token })).status).toBe(200);
  });

  it('answers a plain request without a certificate as before (no mTLS needed for secret clients)', async () => {
    const billing = await serviceClient(tdb.database.db, [readers.name]);
    const res = await postForm(`${proxied.url}/token`, { grant_type: 'client_credentials' }, billing);
    expect(res.status).toBe(200);
  });
});
