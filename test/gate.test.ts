// The decision endpoint over real HTTP, spoken as each gateway speaks it (the headers nginx,
// Traefik, Caddy and Envoy send), against real tokens of a real server: who may pass, with what
// identity, and every refusal with its status and challenge. Real gateways in front of it:
// test/gateways.test.ts.
import http from 'node:http';
import { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { RouteTable, type RouteRule } from '../src/domain/routes.ts';
import { updateApi } from '../src/services/apis.ts';
import { unassignRoleFromClient } from '../src/services/roles.ts';
import { createRoute, updateRoute } from '../src/services/routes.ts';
import { createClient } from '../src/services/clients.ts';
import { selfSigned } from './support/certificates.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createLogger } from '../src/platform/logger.ts';
import { tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let origin: string;
let orders: string;
let reader: { id: string; secret: string };
let writer: { id: string; secret: string };
let writerRole: string;
let routes: RouteTable;

const HOST = 'orders.example';
const rule = (fields: Partial<RouteRule> & Pick<RouteRule, 'id' | 'path'>): RouteRule => ({
  api: orders, host: HOST, methods: [], public: false, scopesAll: [], scopesAny: [], roles: [], clients: [],
  senderConstrained: null, rateLimitPerMinute: null, cacheSeconds: null, ...fields,
});

beforeAll(async () => {
  tdb = await createTestDatabase();
  const { db } = tdb.database;
  orders = (await api(db, { scopes: ['orders:read', 'orders:write'] })).identifier;
  const readRole = await role(db, [{ api: orders, scopes: ['orders:read'] }]);
  const writeRole = await role(db, [{ api: orders, scopes: ['orders:read', 'orders:write'] }]);
  writerRole = writeRole.name;
  reader = await serviceClient(db, [readRole.name]);
  writer = await serviceClient(db, [writeRole.name]);
  routes = new RouteTable([
    rule({ id: 'public', path: '/public/*', public: true }),
    rule({ id: 'read', path: '/orders/*', methods: ['GET'], scopesAll: ['orders:read'] }),
    rule({ id: 'write', path: '/orders/*', methods: ['POST', 'DELETE'], scopesAll: ['orders:write'] }),
    rule({ id: 'admin', path: '/admin/*', scopesAll: ['orders:write'], roles: [writeRole.name] }),
    rule({ id: 'limited', path: '/limited', scopesAll: ['orders:read'], rateLimitPerMinute: 2 }),
    rule({ id: 'cached', path: '/cached', scopesAll: ['orders:read'], cacheSeconds: 30 }),
    rule({ id: 'bound', path: '/bound', scopesAll: ['orders:read'], senderConstrained: 'dpop' }),
  ]);
  server = await startServer(tdb.database, { DPOP_REQUIRE_NONCE: 'false' }, '', { gateRoutes: routes });
  origin = server.url;
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

/** A raw request: paths and headers go out exactly as written. */
function send(method: string, path: string, headers: Record<string, string> = {}, to = origin): Promise<Answer> {
  const url = new URL(to);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: url.hostname, port: url.port, method, path, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

/** What nginx's auth_request sends for an original request. */
const nginx = (method: string, uri: string, headers: Record<string, string> = {}, to = origin) => send('GET', '/gate/auth-request', {
  'x-original-method': method, 'x-original-uri': uri, 'x-forwarded-host': HOST, 'x-forwarded-proto': 'https', ...headers,
}, to);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('the decision endpoint', () => {
  it('asks for a token with 401 and a Bearer challenge naming invalid_token, in every contract', async () => {
    // The gateway contract: one error for every 401, a missing token included (docs/gateways.md).
    const challenge = 'Bearer error="invalid_token", error_description="an access token is required"';
    const asked = [
      await nginx('GET', '/orders/1'),
      await nginx('GET', '/orders/1', { authorization: 'Basic dXNlcjpwYXNz' }),
      await send('GET', '/gate/forward-auth', { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'https', 'x-forwarded-host': HOST, 'x-forwarded-uri': '/orders/1' }),
      await send('GET', '/gate/ext-authz/orders/1', { host: HOST, 'content-length': '0' }),
    ];
    for (const answer of asked) {
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toBe(challenge);
      expect(answer.headers['cache-control']).toBe('no-store');
      expect(JSON.parse(answer.body)).toEqual({ error: 'invalid_token', error_description: 'an access token is required' });
    }
  });

  it('refuses a bad token with invalid_token', async () => {
    for (const token of ['nope', 'eyJhbGciOiJub25lIn0.e30.', 'a'.repeat(43)]) {
      const answer = await nginx('GET', '/orders/1', bearer(token));
      expect(answer.status, token).toBe(401);
      expect(answer.headers['www-authenticate'], token).toMatch(/^Bearer error="invalid_token"/);
    }
  });

  it('allows with exactly 200 and the identity headers of the caller, roles from its current grants', async () => {
    const token = await tokenFor(origin, reader, orders);
    const answer = await nginx('GET', '/orders/1?debug=1', bearer(token));
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('');
    expect(answer.headers).toMatchObject({
      'x-postern-client-id': reader.id, 'x-postern-subject': reader.id, 'x-postern-scope': 'orders:read', 'cache-control': 'no-store',
    });
    expect(answer.headers['x-postern-roles']).toMatch(/^role-/);
  });

  it('refuses a token without the scope with 403 insufficient_scope naming the scope', async () => {
    const token = await tokenFor(origin, reader, orders);
    const answer = await nginx('POST', '/orders/1', bearer(token));
    expect(answer.status).toBe(403);
    expect(answer.headers['www-authenticate']).toMatch(/^Bearer error="insufficient_scope".*scope="orders:write"/);
  });

  it('refuses a token for another API as invalid_token', async () => {
    const other = (await api(tdb.database.db, { scopes: ['x'] })).identifier;
    const client = await serviceClient(tdb.database.db, [(await role(tdb.database.db, [{ api: other, scopes: ['x'] }])).name]);
    const answer = await nginx('GET', '/orders/1', bearer(await tokenFor(origin, client, other)));
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toMatch(/error="invalid_token"/);
  });

  it('refuses a revoked token at once', async () => {
    const token = await tokenFor(origin, reader, orders);
    expect((await nginx('GET', '/orders/1', bearer(token))).status).toBe(200);
    expect((await postForm(`${origin}/token/revocation`, { token }, reader)).status).toBe(200);
    expect((await nginx('GET', '/orders/1', bearer(token))).status).toBe(401);
  });

  it('takes roles and scopes from the current grants, not from the token', async () => {
    const client = await serviceClient(tdb.database.db, [writerRole]);
    const token = await tokenFor(origin, client, orders);
    expect((await nginx('GET', '/admin/x', bearer(token))).status).toBe(200);
    await unassignRoleFromClient(tdb.database.db, writerRole, client.id, NO_AUDIT);
    const after = await nginx('GET', '/admin/x', bearer(token));
    expect(after.status).toBe(403);
  });

  it('checks opaque tokens in the store', async () => {
    const { db } = tdb.database;
    const opaqueApi = (await api(db, { scopes: ['orders:read'], tokenFormat: 'opaque' })).identifier;
    const client = await serviceClient(db, [(await role(db, [{ api: opaqueApi, scopes: ['orders:read'] }])).name]);
    const token = await tokenFor(origin, client, opaqueApi);
    expect(token.split('.')).toHaveLength(1);
    const table = new RouteTable([rule({ id: 'opaque', api: opaqueApi, path: '/orders/*', scopesAll: ['orders:read'] })]);
    const other = await startServer(tdb.database, {}, '', { gateRoutes: table });
    try {
      const answer = await nginx('GET', '/orders/1', bearer(token), other.url);
      expect(answer.status).toBe(200);
      expect(answer.headers['x-postern-client-id']).toBe(client.id);
      expect((await postForm(`${other.url}/token/revocation`, { token }, client)).status).toBe(200);
      expect((await nginx('GET', '/orders/1', bearer(token), other.url)).status).toBe(401);
    } finally {
      await other.close();
    }
  });

  it('lets anyone through a public rule, with no identity', async () => {
    const answer = await nginx('GET', '/public/page', { 'x-postern-client-id': 'forged' });
    expect(answer.status).toBe(200);
    expect(answer.headers['x-postern-client-id']).toBe('');
  });

  it('refuses a request no rule covers with 403', async () => {
    const token = await tokenFor(origin, writer, orders);
    expect((await nginx('GET', '/elsewhere', bearer(token))).status).toBe(403);
    expect((await nginx('GET', '/orders/1', { ...bearer(token), 'x-forwarded-host': 'other.example' })).status).toBe(403);
  });

  it('matches the normalised path: dot segments and escapes do not slip past a rule', async () => {
    const token = await tokenFor(origin, reader, orders);
    // Each resolves to /admin/x, which needs orders:write and the writer role.
    for (const uri of ['/public/../admin/x', '/public/%2e%2e/admin/x', '/public//..//admin/x', '/%61dmin/x', '/public/./../admin/x']) {
      expect((await nginx('GET', uri)).status, uri).toBe(401);
      expect((await nginx('GET', uri, bearer(token))).status, uri).toBe(403);
    }
    for (const uri of ['/public%2F..%2Fadmin/x', '/public/..%2fadmin/x', '/public%5C..%5Cadmin', '/public/%00', '/../admin/x', '/public/%zz']) {
      const answer = await nginx('GET', uri, bearer(token));
      expect(answer.status, uri).toBe(403);
      expect(JSON.parse(answer.body), uri).toMatchObject({ error: 'access_denied' });
    }
  });

  it('limits a rule per client with 429 and Retry-After', async () => {
    const token = await tokenFor(origin, reader, orders);
    const other = await tokenFor(origin, writer, orders);
    expect((await nginx('GET', '/limited', bearer(token))).status).toBe(200);
    expect((await nginx('GET', '/limited', bearer(token))).status).toBe(200);
    const over = await nginx('GET', '/limited', bearer(token));
    expect(over.status).toBe(429);
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    expect((await nginx('GET', '/limited', bearer(other))).status).toBe(200);
  });

  it('lets a gateway cache an allow only as long as the rule says and the token lives', async () => {
    const token = await tokenFor(origin, reader, orders);
    const answer = await nginx('GET', '/cached', bearer(token));
    expect(answer.status).toBe(200);
    expect(answer.headers['cache-control']).toMatch(/^private, max-age=(30|29)$/);
    expect((await nginx('GET', '/cached')).headers['cache-control']).toBe('no-store');
  });
});

describe('each gateway contract', () => {
  it('Traefik and Caddy forward-auth: GET with X-Forwarded-Method, -Proto, -Host, -Uri', async () => {
    const token = await tokenFor(origin, writer, orders);
    const headers = { 'x-forwarded-method': 'DELETE', 'x-forwarded-proto': 'https', 'x-forwarded-host': HOST, 'x-forwarded-uri': '/orders/7', 'x-forwarded-for': '203.0.113.9', ...bearer(token) };
    const answer = await send('GET', '/gate/forward-auth', headers);
    expect(answer.status).toBe(200);
    expect(answer.headers['x-postern-scope']).toBe('orders:read orders:write');
    expect((await send('POST', '/gate/forward-auth', headers)).status).toBe(400);
    const reading = await send('GET', '/gate/forward-auth', { ...headers, ...bearer(await tokenFor(origin, reader, orders)) });
    expect(reading.status).toBe(403);
  });

  it('Envoy ext_authz: the original method and path after the prefix, and Host', async () => {
    const token = await tokenFor(origin, writer, orders);
    const answer = await send('POST', '/gate/ext-authz/orders/7?x=1', { host: HOST, ...bearer(token), 'content-length': '0' });
    expect(answer.status).toBe(200);
    expect((await send('POST', '/gate/ext-authz/public/%2e%2e/orders/7', { host: HOST, 'content-length': '0' })).status).toBe(401);
  });

  it('nginx auth_request without the original URI is a misconfigured gateway: 400', async () => {
    const answer = await send('GET', '/gate/auth-request', { 'x-original-method': 'GET', host: HOST });
    expect(answer.status).toBe(400);
  });

  it('answers nothing at other spellings of the endpoint', async () => {
    for (const path of ['/GATE/auth-request', '/gate/auth-request/', '/gate//auth-request', '/gate/%61uth-request', '/gate', '/gate/', '/gate/x/../auth-request', '/Gate/ext-authz/orders/1']) {
      const answer = await send('GET', path, { 'x-original-method': 'GET', 'x-original-uri': '/public/x', host: HOST });
      expect(answer.status, path).toBe(404);
    }
  });
});

describe('sender-constrained tokens', () => {
  async function proofKey() {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    return { privateKey, publicJwk: await exportJWK(publicKey) };
  }
  const proof = (key: { privateKey: CryptoKey; publicJwk: JWK }, claims: Record<string, unknown>) => new SignJWT({ jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk }).setIssuedAt().sign(key.privateKey);
  const ath = async (token: string) => Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))).toString('base64url');

  it('takes a DPoP-bound token only with a fresh proof of the original method and URL', async () => {
    const key = await proofKey();
    const tokenProof = await proof(key, { htm: 'POST', htu: `${origin}/token` });
    const issued = await fetch(`${origin}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded', dpop: tokenProof,
        authorization: `Basic ${Buffer.from(`${reader.id}:${reader.secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: orders }).toString(),
    });
    const { access_token: token, token_type: type } = await issued.json() as { access_token: string; token_type: string };
    expect(type).toBe('DPoP');
    const dpop = (token: string) => ({ authorization: `DPoP ${token}` });
    const good = await proof(key, { htm: 'GET', htu: `https://${HOST}/bound`, ath: await ath(token) });
    const allowed = await nginx('GET', '/bound?x=1', { ...dpop(token), dpop: good });
    expect(allowed.status).toBe(200);
    expect(allowed.headers['x-postern-client-id']).toBe(reader.id);
    // Replayed, for another URL or method, without a proof, as a Bearer token.
    expect((await nginx('GET', '/bound', { ...dpop(token), dpop: good })).headers['www-authenticate']).toMatch(/^DPoP error="invalid_dpop_proof"/);
    const elsewhere = await proof(key, { htm: 'GET', htu: `https://${HOST}/orders/1`, ath: await ath(token) });
    expect((await nginx('GET', '/bound', { ...dpop(token), dpop: elsewhere })).status).toBe(401);
    const posted = await proof(key, { htm: 'POST', htu: `https://${HOST}/bound`, ath: await ath(token) });
    expect((await nginx('GET', '/bound', { ...dpop(token), dpop: posted })).status).toBe(401);
    expect((await nginx('GET', '/bound', dpop(token))).status).toBe(401);
    expect((await nginx('GET', '/orders/1', bearer(token))).status).toBe(401);
    // A plain Bearer token where the rule wants a DPoP-bound one.
    expect((await nginx('GET', '/bound', bearer(await tokenFor(origin, reader, orders)))).status).toBe(401);
  });
});

describe('certificate-bound tokens', () => {
  it('takes one only with the certificate the gateway forwards, from a trusted proxy', async () => {
    const { db } = tdb.database;
    const [cert, stranger] = await Promise.all([selfSigned('CN=payments'), selfSigned('CN=payments')]);
    const readRole = await role(db, [{ api: orders, scopes: ['orders:read'] }]);
    const { client } = await createClient(db, { name: 'payments-gate', roles: [readRole.name], certificates: [cert.cert] }, NO_AUDIT);
    const table = new RouteTable([rule({ id: 'mtls', path: '/pay', scopesAll: ['orders:read'], senderConstrained: 'mtls' })]);
    const proxied = await startServer(tdb.database, { TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '127.0.0.1' }, '', { gateRoutes: table });
    try {
      const issued = await fetch(`${proxied.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-client-cert': encodeURIComponent(cert.cert) },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: client.clientId, resource: orders }).toString(),
      });
      const { access_token: token } = await issued.json() as { access_token: string };
      const ask = (headers: Record<string, string>) => nginx('GET', '/pay', { ...bearer(token), ...headers }, proxied.url);
      const allowed = await ask({ 'x-client-cert': encodeURIComponent(cert.cert) });
      expect(allowed.status).toBe(200);
      expect(allowed.headers['x-postern-client-id']).toBe(client.clientId);
      expect((await ask({})).status).toBe(401);
      expect((await ask({ 'x-client-cert': encodeURIComponent(stranger.cert) })).status).toBe(401);
      // The same header is not believed from a gateway that is not a certificate proxy.
      const untrusted = await startServer(tdb.database, { TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '10.0.0.0/8' }, '', { gateRoutes: table });
      try {
        expect((await nginx('GET', '/pay', { ...bearer(token), 'x-client-cert': encodeURIComponent(cert.cert) }, untrusted.url)).status).toBe(401);
      } finally {
        await untrusted.close();
      }
    } finally {
      await proxied.close();
    }
  });
});

describe('stored route policies', () => {
  it('decides with the rules written through the service, and a change holds from the next request', async () => {
    const { db } = tdb.database;
    const host = 'stored.example';
    const stored = await createRoute(db, { api: orders, host, path: '/stock/*', methods: ['GET'], scopesAll: ['orders:write'] }, NO_AUDIT);
    const other = await startServer(tdb.database, {});
    try {
      const token = await tokenFor(other.url, reader, orders);
      const ask = () => nginx('GET', '/stock/1', { ...bearer(token), 'x-forwarded-host': host }, other.url);
      expect((await ask()).status).toBe(403);
      await updateRoute(db, stored.id, { scopesAll: ['orders:read'] }, NO_AUDIT);
      // Without a live feed (the embedded store) the table reloads within a second.
      let status = (await ask()).status;
      for (let i = 0; i < 30 && status !== 200; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        status = (await ask()).status;
      }
      expect(status).toBe(200);
    } finally {
      await other.close();
    }
  });
});

describe('answered before the app\'s middleware', () => {
  interface Line { msg: string; level: number; requestId?: string; method?: string; path?: string; route?: string; status?: number; address?: string }
  const sink = (lines: Line[]) => new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Line);
      done();
    },
  });

  it('gets the request id, headers, access-log line and request metrics any request gets, and lets connections go while draining', async () => {
    const lines: Line[] = [];
    const other = await startServer(tdb.database, { TRUST_PROXY: 'true' }, '', { gateRoutes: routes, logger: createLogger('info', sink(lines)) });
    try {
      const forwarded = { 'x-forwarded-for': '203.0.113.9, 198.51.100.7' };
      const traced = await nginx('GET', '/orders/1', { 'x-request-id': 'trace-42', ...forwarded }, other.url);
      expect(traced.status).toBe(401);
      expect(traced.headers).toMatchObject({
        'x-request-id': 'trace-42', 'cache-control': 'no-store', pragma: 'no-cache',
        'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(traced.body)),
      });
      const allowed = await nginx('GET', '/orders/1', { ...bearer(await tokenFor(other.url, reader, orders)), 'x-request-id': 'not an id!' }, other.url);
      expect(allowed.status).toBe(200);
      expect(allowed.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(allowed.headers).toMatchObject({ 'cache-control': 'no-store', pragma: 'no-cache', 'content-type': 'text/plain; charset=utf-8', 'content-length': '0' });
      expect(allowed.headers.connection).toBe('keep-alive');
      const envoyAsked = await send('GET', '/gate/ext-authz/orders/1?access_token=the-secret', { host: HOST, 'x-request-id': 'trace-43' }, other.url);
      expect(envoyAsked.status).toBe(401);

      const lineOf = (id: string) => lines.filter((line) => line.msg === 'request' && line.requestId === id);
      expect(lineOf('trace-42')).toEqual([expect.objectContaining({
        level: 30, method: 'GET', path: '/gate/auth-request', route: '/gate', status: 401, address: '198.51.100.7',
      })]);
      expect(lineOf(allowed.headers['x-request-id'] as string)).toEqual([expect.objectContaining({ route: '/gate', status: 200 })]);
      expect(lineOf('trace-43')).toEqual([expect.objectContaining({ path: '/gate/ext-authz/orders/1', status: 401 })]);
      expect(JSON.stringify(lines)).not.toContain('the-secret');
      const metrics = await (await fetch(`${other.url}/metrics`)).text();
      expect(metrics).toMatch(/postern_http_requests_total\{route="\/gate",method="GET",status="401"\} [1-9]/);
      expect(metrics).toMatch(/postern_http_requests_total\{route="\/gate",method="GET",status="200"\} [1-9]/);

      other.app.drain();
      expect((await nginx('GET', '/orders/1', {}, other.url)).headers.connection).toBe('close');
    } finally {
      await other.close();
    }
  });

  it('answers what it did not expect with a 500 naming the request id, and logs it', async () => {
    const lines: Line[] = [];
    // A rule no table would hold: checking it throws, after the token was checked.
    const broken = { match: () => ({ rule: { ...rule({ id: 'broken', path: '/orders/*' }), scopesAll: null } }) } as unknown as RouteTable;
    const other = await startServer(tdb.database, {}, '', { gateRoutes: broken, logger: createLogger('info', sink(lines)) });
    try {
      const token = await tokenFor(other.url, reader, orders);
      const answer = await nginx('GET', '/orders/1', { ...bearer(token), 'x-request-id': 'trace-500' }, other.url);
      expect(answer.status).toBe(500);
      expect(answer.headers).toMatchObject({ 'x-request-id': 'trace-500', 'cache-control': 'no-store', pragma: 'no-cache' });
      expect(JSON.parse(answer.body)).toEqual({ error: 'server_error', error_description: 'unexpected error; quote request id trace-500' });
      expect(lines.filter((line) => line.requestId === 'trace-500').map((line) => line.msg)).toEqual(['unhandled error', 'request']);
      // The endpoint still answers the next request.
      expect((await nginx('GET', '/orders/1', bearer(token), other.url)).status).toBe(500);
      expect((await nginx('GET', '/orders/1', {}, other.url)).status).toBe(401);
    } finally {
      await other.close();
    }
  });
});

describe('trusted gateways, metrics and the audit log', () => {
  it('refuses a caller outside GATE_TRUSTED_GATEWAYS', async () => {
    const other = await startServer(tdb.database, { GATE_TRUSTED_GATEWAYS: '10.0.0.0/8' }, '', { gateRoutes: routes });
    try {
      const answer = await nginx('GET', '/public/x', {}, other.url);
      expect(answer.status).toBe(403);
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'access_denied' });
    } finally {
      await other.close();
    }
  });

  it('counts decisions by rule and outcome, and audits denials as counts per client, rule and minute', async () => {
    const client = await serviceClient(tdb.database.db, [(await role(tdb.database.db, [{ api: orders, scopes: ['orders:read'] }])).name]);
    const token = await tokenFor(origin, client, orders);
    const forbidden = async () => {
      const text = await (await fetch(`${origin}/metrics`)).text();
      expect(text).not.toMatch(/route="\/orders/);
      return Number(/postern_gate_decisions_total\{route="write",outcome="forbidden"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await forbidden();
    await server.app.audit.flush({ counts: true });
    for (let i = 0; i < 3; i += 1) await nginx('DELETE', '/orders/9', bearer(token));
    expect(await forbidden()).toBe(before + 3);
    await server.app.audit.flush({ counts: true });
    const rows = await sql<{ client_id: string; details: { route: string; count: number } }>`
      select client_id, details from audit_events where type = 'gate.denied' and client_id = ${client.id}`.execute(tdb.database.db);
    const write = rows.rows.filter((row) => row.details.route === 'write');
    expect(write).toHaveLength(1);
    expect(write[0]!.details.count).toBe(3);
    const dump = JSON.stringify(rows.rows);
    expect(dump).not.toContain(token);
  });
});
