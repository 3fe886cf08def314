// Traefik and Envoy are not installed where the tests run: the decision endpoint gets the exact
// requests they send (raw HTTP/1.1, as their documentation describes them), and the snippets of
// docs/gateways.md are read and checked against the endpoint's paths and headers.
import net from 'node:net';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouteTable, type RouteRule } from '../src/domain/routes.ts';
import { GATE_CONTRACT_PATHS } from '../src/domain/gate-request.ts';
import { FORWARDED_CLIENT_CERT_HEADER } from '../src/domain/forwarded-client-cert.ts';
import { IDENTITY_HEADERS } from '../src/services/gate.ts';
import { tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { codeBlocks, read } from './support/deploy-files.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { startServer, type TestServer } from './support/server.ts';
import { envoyClientCertElement, selfSigned, type Issued } from './support/certificates.ts';
import { createClient } from '../src/services/clients.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;
let orders: string;
let writer: { id: string; secret: string };
let reader: { id: string; secret: string };

beforeAll(async () => {
  tdb = await createTestDatabase();
  const { db } = tdb.database;
  orders = (await api(db, { scopes: ['orders:read', 'orders:write'] })).identifier;
  reader = await serviceClient(db, [(await role(db, [{ api: orders, scopes: ['orders:read'] }])).name]);
  writer = await serviceClient(db, [(await role(db, [{ api: orders, scopes: ['orders:read', 'orders:write'] }])).name]);
  const rule = (fields: Partial<RouteRule> & Pick<RouteRule, 'id' | 'path'>): RouteRule => ({
    api: orders, host: 'orders.example', methods: [], public: false, scopesAll: [], scopesAny: [], roles: [], clients: [],
    senderConstrained: null, rateLimitPerMinute: null, cacheSeconds: null, ...fields,
  });
  const routes = new RouteTable([
    rule({ id: 'read', path: '/orders/*', methods: ['GET'], scopesAll: ['orders:read'] }),
    rule({ id: 'write', path: '/orders/*', methods: ['POST'], scopesAll: ['orders:write'] }),
  ]);
  server = await startServer(tdb.database, {}, '', { gateRoutes: routes });
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

interface RawAnswer { status: number; headers: Map<string, string>; body: string }

/** Sends `lines` as one HTTP/1.1 request, byte for byte (latin1: one byte per character), and reads the answer. */
function raw(lines: string[], to: TestServer = server): Promise<RawAnswer> {
  const { port } = new URL(to.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => { text += chunk; });
    socket.on('error', reject);
    socket.on('end', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const [status, ...fields] = head.split('\r\n');
      const headers = new Map(fields.map((field) => {
        const at = field.indexOf(':');
        return [field.slice(0, at).toLowerCase(), field.slice(at + 1).trim()] as [string, string];
      }));
      resolve({ status: Number(status!.split(' ')[1]), headers, body });
    });
    // Not end(): the server would take the half-close as the client leaving. Connection: close ends it.
    socket.write(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
  });
}

/** What Traefik's forwardAuth sends for an original request (its documentation's headers). */
const traefik = (method: string, uri: string, authorization?: string) => raw([
  `GET ${GATE_CONTRACT_PATHS['forward-auth']} HTTP/1.1`,
  `Host: 127.0.0.1:${new URL(server.url).port}`,
  'User-Agent: curl/8.5.0',
  'Accept: */*',
  ...(authorization ? [`Authorization: ${authorization}`] : []),
  'X-Forwarded-For: 203.0.113.7',
  'X-Forwarded-Host: orders.example',
  `X-Forwarded-Method: ${method}`,
  'X-Forwarded-Port: 443',
  'X-Forwarded-Proto: https',
  'X-Forwarded-Server: traefik-7d9f',
  `X-Forwarded-Uri: ${uri}`,
  'X-Real-Ip: 203.0.113.7',
  'Accept-Encoding: gzip',
  'Connection: close',
]);

/**
 * What Envoy's ext_authz HTTP service sends: method and path kept, the prefix before the path, and
 * the headers allowed_headers lets through (x-forwarded-client-cert as its connection manager set it).
 */
const envoy = (method: string, uri: string, authorization?: string, clientCert?: string, to: TestServer = server) => raw([
  `${method} /gate/ext-authz${uri} HTTP/1.1`,
  'Host: orders.example',
  'Content-Length: 0',
  ...(authorization ? [`Authorization: ${authorization}`] : []),
  'X-Forwarded-Proto: https',
  ...(clientCert === undefined ? [] : [`X-Forwarded-Client-Cert: ${clientCert}`]),
  'X-Envoy-Expected-Rq-Timeout-Ms: 500',
  'X-Envoy-Internal: true',
  'X-Forwarded-For: 10.0.0.4',
  'Connection: close',
], to);

describe('Traefik forwardAuth', () => {
  it('allows with 200 and the identity headers, refuses with 401 and 403', async () => {
    const token = await tokenFor(server.url, writer, orders);
    const allowed = await traefik('POST', '/orders/7?expand=1', `Bearer ${token}`);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('x-postern-client-id')).toBe(writer.id);
    expect(allowed.headers.get('x-postern-scope')).toBe('orders:read orders:write');
    const none = await traefik('POST', '/orders/7');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="an access token is required"');
    const weak = await traefik('POST', '/orders/7', `Bearer ${await tokenFor(server.url, reader, orders)}`);
    expect(weak.status).toBe(403);
    expect(weak.headers.get('www-authenticate')).toMatch(/insufficient_scope.*scope="orders:write"/);
  });
});

describe('Envoy ext_authz (HTTP)', () => {
  it('allows with exactly 200, and matches the path after the prefix without its query', async () => {
    const token = await tokenFor(server.url, writer, orders);
    const allowed = await envoy('POST', '/orders/7?x=1', `Bearer ${token}`);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('x-postern-subject')).toBe(writer.id);
    const none = await envoy('GET', '/orders/7');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="an access token is required"');
    expect((await envoy('GET', '/orders/%2e%2e/admin', `Bearer ${token}`)).status).toBe(403);
    expect((await envoy('GET', '/orders%2F7', `Bearer ${token}`)).status).toBe(403);
  });
});

describe('Envoy ext_authz with certificate-bound tokens (x-forwarded-client-cert)', () => {
  const BY = 'spiffe://example.org/ns/edge/sa/envoy';
  let payments: Issued;
  let stranger: Issued;
  let bound: string;
  let clientId: string;
  const servers: TestServer[] = [];
  /** A Postern whose gate has an mTLS rule, with these settings (X-Client-Cert for the token endpoint). */
  const start = async (env: Record<string, string>) => {
    const routes = new RouteTable([{
      id: 'pay', api: orders, host: 'orders.example', path: '/pay', methods: [], public: false, scopesAll: ['orders:read'], scopesAny: [],
      roles: [], clients: [], senderConstrained: 'mtls', rateLimitPerMinute: null, cacheSeconds: null,
    }]);
    const started = await startServer(tdb.database, { TLS_CLIENT_CERT_HEADER: 'X-Client-Cert', ...env }, '', { gateRoutes: routes });
    servers.push(started);
    return started;
  };
  let envoyGate: TestServer;

  beforeAll(async () => {
    const { db } = tdb.database;
    [payments, stranger] = await Promise.all([selfSigned('CN=payments'), selfSigned('CN=payments')]);
    const readRole = await role(db, [{ api: orders, scopes: ['orders:read'] }]);
    clientId = (await createClient(db, { name: 'payments-envoy', roles: [readRole.name], certificates: [payments.cert] }, NO_AUDIT)).client.clientId;
    envoyGate = await start({ TLS_CLIENT_CERT_PROXIES: '127.0.0.1', GATE_ENVOY_CLIENT_CERT: 'true' });
    const issued = await fetch(`${envoyGate.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-client-cert': encodeURIComponent(payments.cert) },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, resource: orders }).toString(),
    });
    bound = `Bearer ${(await issued.json() as { access_token: string }).access_token}`;
  });

  afterAll(async () => {
    for (const each of servers) await each.close();
  });

  const refusedAsUnbound = (answer: RawAnswer, what: string) => {
    expect(answer.status, what).toBe(401);
    expect(answer.headers.get('www-authenticate'), what)
      .toBe('Bearer error="invalid_token", error_description="this access token is bound to a certificate the request did not present"');
  };

  it('allows with the certificate Envoy describes, set as SANITIZE_SET sets it: from its Cert and Hash, or its Hash alone', async () => {
    const shapes = [
      envoyClientCertElement(payments.cert, { by: BY, cert: true }),
      envoyClientCertElement(payments.cert, { by: BY, cert: true, subject: 'CN=payments', uri: ['spiffe://example.org/ns/shop/sa/payments'], dns: ['payments.internal'] }),
      envoyClientCertElement(payments.cert, { by: BY, subject: 'CN=payments', uri: [] }),
    ];
    for (const element of shapes) {
      const answer = await envoy('GET', '/pay', bound, element, envoyGate);
      expect(answer.status, element.slice(0, 100)).toBe(200);
      expect(answer.headers.get('x-postern-client-id')).toBe(clientId);
    }
  });

  it('refuses with 401 invalid_token without that certificate, or with a header it cannot read safely; never a 500', async () => {
    refusedAsUnbound(await envoy('GET', '/pay', bound, undefined, envoyGate), 'no header');
    refusedAsUnbound(await envoy('GET', '/pay', bound, envoyClientCertElement(stranger.cert, { by: BY, cert: true }), envoyGate), 'another certificate');
    const mine = envoyClientCertElement(payments.cert, { by: BY, cert: true, subject: 'CN=payments', uri: [] });
    const theirs = envoyClientCertElement(stranger.cert, { by: BY, cert: true, subject: 'CN=payments', uri: [] });
    const victimHex = envoyClientCertElement(payments.cert).slice('Hash='.length);
    const malformed = [
      // APPEND_FORWARD: a client's own element before Envoy's, either way round.
      `${mine},${theirs}`, `${theirs},${mine}`,
      // The stranger's certificate with a URI name that carries the victim's Hash.
      envoyClientCertElement(stranger.cert, { by: BY, cert: true, subject: 'CN=payments', uri: [`spiffe://x,Hash=${victimHex}`] }),
      envoyClientCertElement(stranger.cert, { by: BY, uri: [`spiffe://x;Hash=${victimHex}`] }),
      // A Hash and a Cert of two certificates; junk.
      mine.replace(/Hash=[0-9a-f]{64}/, envoyClientCertElement(stranger.cert)), 'Hash=zz', 'Cert="%E0%A4%A"', 'Hash="abc', `${mine};`, '\u00ff\u00fe',
    ];
    for (const header of malformed) refusedAsUnbound(await envoy('GET', '/pay', bound, header, envoyGate), header.slice(0, 100));
  });

  it('believes the header only on the Envoy contract, from TLS_CLIENT_CERT_PROXIES, when GATE_ENVOY_CLIENT_CERT is on', async () => {
    const element = envoyClientCertElement(payments.cert, { by: BY, cert: true });
    // nginx's contract reads TLS_CLIENT_CERT_HEADER (X-Client-Cert here), never Envoy's header.
    const nginx = await raw([
      'GET /gate/auth-request HTTP/1.1', 'Host: orders.example', 'X-Original-Method: GET', 'X-Original-URI: /pay',
      `Authorization: ${bound}`, `X-Forwarded-Client-Cert: ${element}`, 'Connection: close',
    ], envoyGate);
    refusedAsUnbound(nginx, 'auth-request');
    // Other processes of the same issuer, which take the same token.
    const notAProxy = await start({ ISSUER: envoyGate.url, TLS_CLIENT_CERT_PROXIES: '10.0.0.0/8', GATE_ENVOY_CLIENT_CERT: 'true' });
    refusedAsUnbound(await envoy('GET', '/pay', bound, element, notAProxy), 'not a certificate proxy');
    const off = await start({ ISSUER: envoyGate.url, TLS_CLIENT_CERT_PROXIES: '127.0.0.1' });
    refusedAsUnbound(await envoy('GET', '/pay', bound, element, off), 'GATE_ENVOY_CLIENT_CERT off');
  });
});

describe('hostile bytes', () => {
  it('get a 4xx, never a 500, though the endpoint answers before the request guard', async () => {
    const port = new URL(server.url).port;
    const base = (extra: string[], target = '/gate/auth-request') => [
      `GET ${target} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: close', ...extra,
    ];
    const original = ['X-Original-Method: GET', 'X-Forwarded-Host: orders.example'];
    const cases: string[][] = [
      base([...original, 'X-Original-URI: /orders/%00']),
      base([...original, 'X-Original-URI: /orders/\u00ff\u00fe']),
      base([...original, 'X-Original-URI: /orders/1', 'Authorization: Bearer \u00ff\u00fe.\u00ff.x']),
      base([...original, 'X-Original-URI: /orders/1', 'Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.AAA.AAA']),
      base([...original, 'X-Original-URI: /orders/1', 'Authorization: DPoP abc', 'DPoP: \u00ff']),
      base(['X-Original-Method: GET', 'X-Original-URI: /orders/1', 'X-Forwarded-Host: orders\u00ff.example']),
      base(['Content-Length: 0'], '/gate/ext-authz/orders/%ff%fe'),
    ];
    for (const lines of cases) {
      const answer = await raw(lines.map((line) => JSON.parse(`"${line}"`) as string));
      expect(answer.status, lines.join(' | ')).toBeGreaterThanOrEqual(400);
      expect(answer.status, lines.join(' | ')).toBeLessThan(500);
    }
  });
});

describe('docs/gateways.md', () => {
  const blocks = codeBlocks(read('docs/gateways.md')).filter((block) => block.lang === 'yaml').map((block) => parse(block.text));
  const identity = Object.values(IDENTITY_HEADERS);

  it('configures Traefik at the forward-auth path, copying every identity header', () => {
    const middleware = blocks.find((block) => block?.http?.middlewares)?.http.middlewares.postern.forwardAuth;
    expect(new URL(middleware.address).pathname).toBe(GATE_CONTRACT_PATHS['forward-auth']);
    expect(middleware.trustForwardHeader).toBe(false);
    expect(middleware.authResponseHeaders).toEqual(identity);
  });

  it('configures Envoy at the ext-authz prefix, failing closed, with the headers Postern reads and answers', () => {
    const manager = blocks.find((block) => Array.isArray(block?.http_filters));
    // The client certificate: Envoy's own element alone, with the PEM (the forms read above).
    expect(manager.forward_client_cert_details).toBe('SANITIZE_SET');
    expect(manager.set_current_client_cert_details).toEqual({ cert: true });
    const filter = manager.http_filters[0].typed_config;
    expect(filter.failure_mode_allow).toBe(false);
    expect(filter.http_service.path_prefix).toBe(GATE_CONTRACT_PATHS['ext-authz']);
    const exact = (list: { patterns: { exact: string }[] }) => list.patterns.map((pattern) => pattern.exact);
    expect(exact(filter.http_service.authorization_request.allowed_headers))
      .toEqual(['authorization', 'dpop', 'x-forwarded-proto', FORWARDED_CLIENT_CERT_HEADER]);
    expect(exact(filter.http_service.authorization_response.allowed_upstream_headers)).toEqual(identity.map((name) => name.toLowerCase()));
    expect(exact(filter.http_service.authorization_response.allowed_client_headers)).toEqual(['www-authenticate', 'retry-after']);
  });
});
