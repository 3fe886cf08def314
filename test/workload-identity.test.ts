// Federated client authentication (RFC 7523 §2.2 with a trusted issuer's token): Kubernetes
// projected service-account tokens, SPIFFE JWT-SVIDs and GitHub Actions tokens from issuers this
// test runs on loopback, presented as client assertions over real HTTP, and every way one is refused.
import http from 'node:http';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createClient, updateClient } from '../src/services/clients.ts';
import { createIssuer, deleteIssuer, updateIssuer } from '../src/services/trusted-issuers.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, unique } from './support/fixtures.ts';
import { githubClaims, kubernetesClaims, spiffeClaims, startLocalIssuer, type LocalIssuer } from './support/local-issuer.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const DEV = { development: true };

let tdb: TestDatabase;
let server: TestServer;
let k8s: LocalIssuer;
let orders: Awaited<ReturnType<typeof api>>;
let reader: Awaited<ReturnType<typeof role>>;
let clientId: string;
let issuerName: string;

const db = () => tdb.database.db;
const tokenRequest = (assertion: string, extra: Record<string, string> = {}) => postForm(`${server.url}/token`, {
  grant_type: 'client_credentials', resource: orders.identifier, scope: 'orders:read',
  client_assertion_type: ASSERTION_TYPE, client_assertion: assertion, ...extra,
});
const k8sToken = (overrides: Record<string, unknown> = {}, account = 'orders', issuer = k8s) =>
  issuer.sign({ ...kubernetesClaims(issuer.url, server.url, 'shop', account), ...overrides });

async function expectRefused(assertion: string, description: RegExp, extra: Record<string, string> = {}) {
  const response = await tokenRequest(assertion, extra);
  expect(response.body).toEqual({ error: 'invalid_client', error_description: expect.stringMatching(description) });
  expect(response.status).toBe(401);
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  // A low back-off threshold would make the many refusals below back off; it has a test of its own.
  server = await startServer(tdb.database, { RATE_LIMIT_INVALID_CLIENT: '0', TRUSTED_ISSUER_REFETCH_SECONDS: '1', TRUSTED_ISSUER_FETCH_TIMEOUT_MS: '500' });
  k8s = await startLocalIssuer();
  orders = await api(db(), { scopes: ['orders:read'] });
  reader = await role(db(), [{ api: orders.identifier, scopes: ['orders:read'] }]);
  issuerName = unique('k8s');
  await createIssuer(db(), { name: issuerName, issuer: k8s.url, kind: 'kubernetes', discovery: true }, DEV, NO_AUDIT);
  const { client, clientSecret } = await createClient(db(), {
    name: unique('orders'), roles: [reader.name], federated: { issuer: issuerName, subject: 'system:serviceaccount:shop:orders' },
  }, NO_AUDIT);
  expect(clientSecret).toBeNull();
  expect(client.tokenEndpointAuthMethod).toBe('federated_jwt');
  clientId = client.clientId;
});

afterAll(async () => {
  await server?.close();
  await k8s?.close();
  await tdb?.drop();
});

describe('a Kubernetes projected service-account token', () => {
  it('authenticates the client bound to its service account, without client_id', async () => {
    const response = await tokenRequest(await k8sToken());
    expect(response.status).toBe(200);
    const claims = decodeJwt(response.body.access_token);
    expect(claims.client_id).toBe(clientId);
    expect(claims.aud).toBe(orders.identifier);
    expect(claims.scope).toBe('orders:read');
  });

  it('accepts client_id when it names the same client, and the token endpoint as audience', async () => {
    const response = await tokenRequest(await k8sToken({ aud: `${server.url}/token` }), { client_id: clientId });
    expect(response.status).toBe(200);
  });

  it('refuses a client_id that names another client', async () => {
    await expectRefused(await k8sToken(), /client_id does not name the client/, { client_id: 'aaaaaaaaaaaaaaaaaaaaaa' });
  });

  it('refuses a replayed jti', async () => {
    const token = await k8sToken();
    expect((await tokenRequest(token)).status).toBe(200);
    await expectRefused(token, /used before/);
  });

  it('refuses a wrong signature', async () => {
    const forged = await k8s.sign(kubernetesClaims(k8s.url, server.url, 'shop', 'orders'), { key: await k8s.strangerKey() });
    await expectRefused(forged, /signature does not verify/);
  });

  it('refuses an issuer it does not trust', async () => {
    const other = await startLocalIssuer();
    try {
      await expectRefused(await other.sign(kubernetesClaims(other.url, server.url, 'shop', 'orders')), /not a trusted issuer/);
    } finally {
      await other.close();
    }
  });

  it('refuses a subject no client is bound to', async () => {
    await expectRefused(await k8sToken({}, 'payments'), /no client is bound to subject "system:serviceaccount:shop:payments"/);
  });

  it('refuses another audience', async () => {
    await expectRefused(await k8sToken({ aud: ['https://kubernetes.default.svc'] }), /audience \(aud\) must be one of/);
  });

  it('refuses a token without exp', async () => {
    const { exp: _, ...claims } = kubernetesClaims(k8s.url, server.url, 'shop', 'orders');
    await expectRefused(await k8s.sign(claims), /no expiry \(exp\)/);
  });

  it('refuses an expired token', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await k8sToken({ iat: now - 7200, nbf: now - 7200, exp: now - 3600 }), /expired/);
  });

  it('refuses a lifetime above the cap (1 h by default)', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await k8sToken({ iat: now, exp: now + 7200 }), /lives longer than 3600 s/);
  });

  it('refuses a disabled client, and accepts it again once enabled', async () => {
    await updateClient(db(), clientId, { enabled: false }, NO_AUDIT);
    await expectRefused(await k8sToken(), /disabled/);
    await updateClient(db(), clientId, { enabled: true }, NO_AUDIT);
    expect((await tokenRequest(await k8sToken())).status).toBe(200);
  });

  it('refuses a disabled issuer', async () => {
    await updateIssuer(db(), issuerName, { enabled: false }, DEV, NO_AUDIT);
    try {
      await expectRefused(await k8sToken(), /is disabled/);
    } finally {
      await updateIssuer(db(), issuerName, { enabled: true }, DEV, NO_AUDIT);
    }
  });

  it('never lets the stand-in secret of a verified request through on its own', async () => {
    const response = await postForm(`${server.url}/token`, {
      grant_type: 'client_credentials', resource: orders.identifier, client_id: clientId, client_secret: 'anything',
    });
    expect(response.status).toBe(401);
    expect(response.body.error).toBe('invalid_client');
  });
});

/** A token request whose form body comes chunked (no Content-Length), in pieces. */
function chunkedTokenRequest(form: Record<string, string>, pieces = 3): Promise<{ status: number; body: any }> {
  const body = new URLSearchParams(form).toString();
  const url = new URL(`${server.url}/token`);
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: url.hostname, port: url.port, method: 'POST', path: url.pathname,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' },
    }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { text += chunk; });
      response.on('end', () => resolve({ status: response.statusCode!, body: text.startsWith('{') ? JSON.parse(text) : text }));
    });
    request.on('error', reject);
    const size = Math.ceil(body.length / pieces);
    for (let at = 0; at < body.length; at += size) request.write(body.slice(at, at + size));
    request.end();
  });
}

describe('a chunked token request (no Content-Length)', () => {
  it('authenticates the bound client as a request with a length does', async () => {
    const response = await chunkedTokenRequest({
      grant_type: 'client_credentials', resource: orders.identifier, scope: 'orders:read',
      client_assertion_type: ASSERTION_TYPE, client_assertion: await k8sToken(),
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(decodeJwt(response.body.access_token).client_id).toBe(clientId);
  });

  it('refuses a bad assertion with the reason, as for a request with a length', async () => {
    const response = await chunkedTokenRequest({
      grant_type: 'client_credentials', resource: orders.identifier,
      client_assertion_type: ASSERTION_TYPE, client_assertion: await k8sToken({ sub: 'system:serviceaccount:shop:nobody' }),
    });
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ error: 'invalid_client', error_description: expect.stringMatching(/^client assertion: /) });
  });

  it('refuses a chunked body over MAX_BODY_BYTES as too large', async () => {
    const response = await chunkedTokenRequest({
      grant_type: 'client_credentials', resource: orders.identifier, padding: 'x'.repeat(40 * 1024),
      client_assertion_type: ASSERTION_TYPE, client_assertion: await k8sToken(),
    }, 20);
    expect(response.status).toBe(413);
  });
});

describe('keys of the issuer', () => {
  it('re-fetches on an unknown kid, at most once per interval', async () => {
    // Past the interval since the last fetch (TRUSTED_ISSUER_REFETCH_SECONDS=1 here).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await k8s.rotate();
    const before = k8s.fetches;
    // The new key's kid is unknown to the cache: one fetch, then accepted.
    expect((await tokenRequest(await k8sToken())).status).toBe(200);
    expect(k8s.fetches).toBe(before + 1);
    // Made-up kids within the interval cause no fetch.
    for (let i = 0; i < 5; i += 1) {
      await expectRefused(await k8s.sign(kubernetesClaims(k8s.url, server.url, 'shop', 'orders'), { kid: `made-up-${i}` }), /no key "made-up-\d"/);
    }
    expect(k8s.fetches).toBe(before + 1);
  });

  it('refuses while the issuer is down, slow or answers too much, when it has no keys yet', async () => {
    const flaky = await startLocalIssuer();
    const name = unique('flaky');
    await createIssuer(db(), { name, issuer: flaky.url, kind: 'kubernetes', jwksUri: flaky.jwksUrl }, DEV, NO_AUDIT);
    await createClient(db(), { name: unique('flaky-client'), roles: [reader.name], federated: { issuer: name, subject: 'system:serviceaccount:shop:flaky' } }, NO_AUDIT);
    const token = () => flaky.sign(kubernetesClaims(flaky.url, server.url, 'shop', 'flaky'));
    try {
      flaky.mode = 'down';
      await expectRefused(await token(), /could not be fetched: .* answered 503/);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      flaky.mode = 'slow';
      flaky.delayMs = 2000;
      const started = Date.now();
      await expectRefused(await token(), /no answer within 500 ms/);
      expect(Date.now() - started).toBeLessThan(1900);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      flaky.mode = 'huge';
      await expectRefused(await token(), /larger than/);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      flaky.mode = 'redirect';
      await expectRefused(await token(), /answered 302/);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      flaky.mode = 'ok';
      expect((await tokenRequest(await token())).status).toBe(200);
    } finally {
      await flaky.close();
    }
  });
});

describe('GitHub Actions and SPIFFE', () => {
  it('binds a workflow by its sub and requires claims exactly', async () => {
    const gh = await startLocalIssuer();
    const name = unique('gh');
    try {
      await createIssuer(db(), { name, issuer: gh.url, kind: 'oidc', discovery: true }, DEV, NO_AUDIT);
      await createClient(db(), {
        name: unique('deployer'), roles: [reader.name],
        federated: { issuer: name, subject: 'repo:acme/shop:ref:refs/heads/main', claims: { repository_owner: 'acme', workflow: 'deploy' } },
      }, NO_AUDIT);
      expect((await tokenRequest(await gh.sign(githubClaims(gh.url, server.url, 'acme/shop')))).status).toBe(200);
      await expectRefused(await gh.sign({ ...githubClaims(gh.url, server.url, 'acme/shop'), workflow: 'other' }), /claim "workflow" does not have the value/);
      const { repository_owner: _, ...missing } = githubClaims(gh.url, server.url, 'acme/shop');
      await expectRefused(await gh.sign(missing), /claim "repository_owner"/);
    } finally {
      await gh.close();
    }
  });

  it('takes a JWT-SVID without iss or jti from a SPIFFE trust bundle endpoint', async () => {
    const spire = await startLocalIssuer({ alg: 'ES256' });
    spire.bundleStyle = true;
    const name = unique('spire');
    try {
      await createIssuer(db(), { name, issuer: 'spiffe://example.org', kind: 'spiffe', jwksUri: spire.jwksUrl }, DEV, NO_AUDIT);
      await createClient(db(), { name: unique('spiffe-orders'), roles: [reader.name], federated: { issuer: name, subject: 'spiffe://example.org/ns/shop/sa/orders' } }, NO_AUDIT);
      const svid = await spire.sign(spiffeClaims('spiffe://example.org/ns/shop/sa/orders', server.url));
      expect((await tokenRequest(svid)).status).toBe(200);
      // Without a jti it cannot be held to one use; its short lifetime bounds it (docs/workload-identity.md).
      expect((await tokenRequest(svid)).status).toBe(200);
      await expectRefused(await spire.sign(spiffeClaims('spiffe://other.org/ns/shop/sa/orders', server.url)), /not a trusted issuer/);
    } finally {
      await spire.close();
    }
  });
});

describe('a deleted issuer', () => {
  it('is refused while clients are bound, and its tokens are refused once deleted with force', async () => {
    await expect(deleteIssuer(db(), issuerName, {}, NO_AUDIT)).rejects.toThrow(/authenticates/);
    await deleteIssuer(db(), issuerName, { force: true }, NO_AUDIT);
    await expectRefused(await k8sToken(), /not a trusted issuer/);
  });
});

describe('the invalid_client back-off', () => {
  it('counts refused assertions against the bound client, without client_id', async () => {
    const issuer = await startLocalIssuer();
    const limited = await startServer(tdb.database, { RATE_LIMIT_INVALID_CLIENT: '3', RATE_LIMIT_INVALID_CLIENT_BLOCK_SECONDS: '60' });
    try {
      const name = unique('backoff');
      await createIssuer(db(), { name, issuer: issuer.url, kind: 'kubernetes', discovery: true }, DEV, NO_AUDIT);
      await createClient(db(), { name: unique('backoff-client'), roles: [reader.name], federated: { issuer: name, subject: 'system:serviceaccount:shop:backoff' } }, NO_AUDIT);
      const request = async (claims: Record<string, unknown>) => postForm(`${limited.url}/token`, {
        grant_type: 'client_credentials', resource: orders.identifier, client_assertion_type: ASSERTION_TYPE,
        client_assertion: await issuer.sign({ ...kubernetesClaims(issuer.url, limited.url, 'shop', 'backoff'), ...claims }),
      });
      // The fourth failure goes past the limit of three.
      for (let i = 0; i < 4; i += 1) expect((await request({ aud: 'https://elsewhere' })).status).toBe(401);
      // Backed off: even a good assertion waits now.
      const blocked = await request({});
      expect(blocked.status).toBe(429);
      expect(blocked.headers.get('retry-after')).toBeTruthy();
    } finally {
      await limited.close();
      await issuer.close();
    }
  });
});
