// Real nginx and Caddy in front of an API, asking Postern's decision endpoint, configured with the
// very files users copy (deploy/nginx-gateway.conf, deploy/Caddyfile). What a client sees through
// the gateway, and what the API behind it receives. Slow, and about the gateways rather than the
// store: it runs once in CI, on Postgres; it skips with a notice where a binary is missing.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouteTable, type RouteRule } from '../src/domain/routes.ts';
import { tokenFor } from './support/admin.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { hasCaddy, hasNginx, startCaddy, startNginx, startUpstream, type Gateway, type Upstream } from './support/gateways.ts';
import { cleanUp } from './support/process.ts';
import { selfSigned } from './support/certificates.ts';
import { createClient } from '../src/services/clients.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

if (!onPostgres) console.warn('test/gateways.test.ts runs on Postgres only (once in CI): set TEST_DATABASE_URL');
if (!hasNginx) console.warn('nginx is not installed: deploy/nginx-gateway.conf is not tested');
if (!hasCaddy) console.warn('caddy is not installed: deploy/Caddyfile is not tested');

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

/** A raw request through the gateway: the path goes out exactly as written. */
function send(base: string, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: url.hostname, port: url.port, method, path, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

const gateways: [string, boolean, (postern: string, api: string) => Promise<Gateway>][] = [
  ['nginx (deploy/nginx-gateway.conf)', hasNginx, startNginx],
  ['Caddy (deploy/Caddyfile)', hasCaddy, startCaddy],
];

describe.runIf(onPostgres).each(gateways)('%s in front of an API', (_name, installed, start) => {
  let tdb: TestDatabase;
  let server: TestServer;
  let upstream: Upstream;
  let gateway: Gateway;
  let orders: string;
  let reader: { id: string; secret: string };
  let writer: { id: string; secret: string };

  beforeAll(async () => {
    if (!installed) return;
    tdb = await createTestDatabase();
    const { db } = tdb.database;
    orders = (await api(db, { scopes: ['orders:read', 'orders:write'] })).identifier;
    reader = await serviceClient(db, [(await role(db, [{ api: orders, scopes: ['orders:read'] }])).name]);
    writer = await serviceClient(db, [(await role(db, [{ api: orders, scopes: ['orders:read', 'orders:write'] }])).name]);
    const rule = (fields: Partial<RouteRule> & Pick<RouteRule, 'id' | 'path'>): RouteRule => ({
      api: orders, host: null, methods: [], public: false, scopesAll: [], scopesAny: [], roles: [], clients: [],
      senderConstrained: null, rateLimitPerMinute: null, cacheSeconds: null, ...fields,
    });
    const routes = new RouteTable([
      rule({ id: 'public', path: '/public/*', public: true }),
      rule({ id: 'read', path: '/orders/*', methods: ['GET'], scopesAll: ['orders:read'] }),
      rule({ id: 'write', path: '/orders/*', methods: ['POST'], scopesAll: ['orders:write'] }),
      rule({ id: 'admin', path: '/admin/*', scopesAll: ['orders:write'] }),
      rule({ id: 'limited', path: '/limited', scopesAll: ['orders:read'], rateLimitPerMinute: 1 }),
      rule({ id: 'bound', path: '/pay', scopesAll: ['orders:read'], senderConstrained: 'mtls' }),
    ]);
    // The gateway is also the proxy that forwards client certificates.
    server = await startServer(tdb.database, {
      GATE_TRUSTED_GATEWAYS: '127.0.0.1', TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', TLS_CLIENT_CERT_PROXIES: '127.0.0.1',
    }, '', { gateRoutes: routes });
    upstream = await startUpstream();
    gateway = await start(new URL(server.url).host, new URL(upstream.url).host);
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    await server?.close();
    await tdb?.drop();
    await cleanUp();
  });

  const reached = (path: string) => upstream.seen.filter((each) => each.url === path).length;

  it.runIf(installed)('answers 401 with WWW-Authenticate without a token, and the API sees nothing', async () => {
    const answer = await send(gateway.url, 'GET', '/orders/1');
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toBe('Bearer error="invalid_token", error_description="an access token is required"');
    expect(reached('/orders/1')).toBe(0);
  });

  it.runIf(installed)('passes a token with the right scope, and the API sees the identity headers, not forged ones', async () => {
    const token = await tokenFor(server.url, reader, orders);
    const answer = await send(gateway.url, 'GET', '/orders/2?page=1', {
      authorization: `Bearer ${token}`, 'x-postern-client-id': 'forged', 'x-postern-roles': 'admin',
    });
    expect(answer.status).toBe(200);
    const seen = JSON.parse(answer.body) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe('/orders/2?page=1');
    expect(seen.headers).toMatchObject({ 'x-postern-client-id': reader.id, 'x-postern-subject': reader.id, 'x-postern-scope': 'orders:read' });
    expect(seen.headers['x-postern-roles']).toMatch(/^role-/);
  });

  it.runIf(installed)('removes forged identity headers on a public route', async () => {
    const answer = await send(gateway.url, 'GET', '/public/page', { 'x-postern-client-id': 'forged', 'x-postern-scope': 'orders:write' });
    expect(answer.status).toBe(200);
    const seen = JSON.parse(answer.body) as { headers: Record<string, string> };
    // Absent (nginx drops an empty header) or empty (Caddy copies it as it is): never the client's.
    for (const name of ['x-postern-client-id', 'x-postern-scope', 'x-postern-actor']) expect(seen.headers[name] ?? '', name).toBe('');
  });

  it.runIf(installed)('describes the request itself: a client cannot pass its own original-request headers', async () => {
    const answer = await send(gateway.url, 'GET', '/orders/5', {
      'x-original-uri': '/public/x', 'x-original-method': 'GET', 'x-forwarded-uri': '/public/x', 'x-forwarded-method': 'GET',
      'x-forwarded-host': 'elsewhere.example', 'x-forwarded-proto': 'https',
    });
    expect(answer.status).toBe(401);
    expect(reached('/orders/5')).toBe(0);
  });

  it.runIf(installed)('answers 403 to a token without the scope', async () => {
    const token = await tokenFor(server.url, reader, orders);
    const answer = await send(gateway.url, 'POST', '/orders/3', { authorization: `Bearer ${token}`, 'content-length': '0' });
    expect(answer.status).toBe(403);
    expect(answer.headers['www-authenticate']).toMatch(/insufficient_scope/);
    expect(reached('/orders/3')).toBe(0);
  });

  it.runIf(installed)('refuses a revoked token at once', async () => {
    const token = await tokenFor(server.url, writer, orders);
    expect((await send(gateway.url, 'POST', '/orders/4', { authorization: `Bearer ${token}`, 'content-length': '0' })).status).toBe(200);
    expect((await postForm(`${server.url}/token/revocation`, { token }, writer)).status).toBe(200);
    const answer = await send(gateway.url, 'POST', '/orders/4', { authorization: `Bearer ${token}`, 'content-length': '0' });
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toMatch(/error="invalid_token"/);
  });

  it.runIf(installed)('denies dot-segment and encoded paths that lead past a rule', async () => {
    const token = await tokenFor(server.url, reader, orders);
    const before = upstream.seen.length;
    for (const path of ['/public/../admin/x', '/public/%2e%2e/admin/x', '/public/%2E%2E/admin/x', '/public//..//admin/x', '/public%2F..%2Fadmin/x', '/public/..%2Fadmin/x', '/%61dmin/x', '/public/..%5Cadmin/x']) {
      const answer = await send(gateway.url, 'GET', path, { authorization: `Bearer ${token}` });
      expect([400, 401, 403], path).toContain(answer.status);
    }
    expect(upstream.seen.slice(before).map((each) => each.url)).toEqual([]);
  });

  it.runIf(installed)('never lets a client send its own certificate header to Postern', async () => {
    const cert = await selfSigned('CN=payments');
    const readRole = await role(tdb.database.db, [{ api: orders, scopes: ['orders:read'] }]);
    const { client } = await createClient(tdb.database.db, { name: `payments-${_name.split(' ')[0]}`, roles: [readRole.name], certificates: [cert.cert] }, NO_AUDIT);
    // Issued straight from Postern, bound to the certificate (as if through a TLS proxy).
    const issued = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-client-cert': encodeURIComponent(cert.cert) },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: client.clientId, resource: orders }).toString(),
    });
    const { access_token: token } = await issued.json() as { access_token: string };
    // A stolen token and the (public) certificate, sent through the gateway without TLS.
    const answer = await send(gateway.url, 'GET', '/pay', { authorization: `Bearer ${token}`, 'x-client-cert': encodeURIComponent(cert.cert) });
    expect(answer.status).toBe(401);
    expect(reached('/pay')).toBe(0);
  });

  it.runIf(installed)('passes 429 with Retry-After over a route limit', async () => {
    const token = await tokenFor(server.url, reader, orders);
    expect((await send(gateway.url, 'GET', '/limited', { authorization: `Bearer ${token}` })).status).toBe(200);
    const over = await send(gateway.url, 'GET', '/limited', { authorization: `Bearer ${token}` });
    expect(over.status).toBe(429);
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
  });
});

describe.runIf(onPostgres && hasNginx)('a gateway Postern does not trust', () => {
  it('is refused', async () => {
    const tdb = await createTestDatabase();
    const server = await startServer(tdb.database, { GATE_TRUSTED_GATEWAYS: '10.9.8.7' }, '', { gateRoutes: new RouteTable([]) });
    const upstream = await startUpstream();
    const gateway = await startNginx(new URL(server.url).host, new URL(upstream.url).host);
    try {
      // The gateway's refusal: nginx passes Postern's 403 on.
      expect((await send(gateway.url, 'GET', '/anything')).status).toBe(403);
      expect(upstream.seen).toEqual([]);
    } finally {
      await gateway.stop();
      await upstream.close();
      await server.close();
      await tdb.drop();
      await cleanUp();
    }
  }, 60_000);
});
