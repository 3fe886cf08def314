// One spelling per endpoint: request limits recognise an endpoint by its path, so every other
// spelling a router might accept (case, trailing or doubled slashes, percent-escapes, dot
// segments, a case variant of the issuer's path) must be refused with 404 before it reaches the
// endpoint. Raw HTTP, since fetch() would resolve dot segments and escapes before sending.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
const servers: TestServer[] = [];
let resource: string;
let roleName: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  const orders = await api(tdb.database.db, { scopes: ['orders:read'] });
  resource = orders.identifier;
  roleName = (await role(tdb.database.db, [{ api: resource, scopes: ['orders:read'] }])).name;
});

afterAll(async () => {
  for (const server of servers) await server.close();
  await tdb.drop();
});

async function server(issuerPath: string, env: Record<string, string> = {}): Promise<TestServer> {
  const started = await startServer(tdb.database, env, issuerPath);
  servers.push(started);
  return started;
}

type Credentials = { id: string; secret: string };
interface Answer { status: number; contentType: string; body: string }

/** A request with the path sent exactly as written. */
function send(
  origin: string, method: string, path: string, options: { form?: Record<string, string>; client?: Credentials } = {},
): Promise<Answer> {
  const url = new URL(origin);
  const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
  const headers: Record<string, string> = {};
  if (body !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  if (options.client) headers.authorization = `Basic ${Buffer.from(`${options.client.id}:${options.client.secret}`).toString('base64')}`;
  return new Promise((resolve, reject) => {
    const request = http.request({ host: url.hostname, port: url.port, method, path, headers }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { text += chunk; });
      response.on('end', () => resolve({ status: response.statusCode!, contentType: String(response.headers['content-type']), body: text }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Every other way to write `path` that some router could have taken for it. */
function variants(path: string): string[] {
  const segments = path.split('/').slice(1);
  const capitalized = (index: number) => `/${segments.map((s, i) => (i === index ? s[0]!.toUpperCase() + s.slice(1) : s)).join('/')}`;
  const out = new Set<string>([
    path.toUpperCase(),
    capitalized(0),
    capitalized(segments.length - 1),
    `${path}/`,
    `${path}//`,
    `/${path}`,
    path.replace(/\/([a-z])/, (_m, c: string) => `/%${c.charCodeAt(0).toString(16)}`),
    `/.${path}`,
    `/x/..${path}`,
    `${path}/.`,
    `${path}/x/..`,
    `${path}%2F`,
    `${path};x`,
  ]);
  for (let i = 1; i < segments.length; i += 1) out.add(`/${segments.slice(0, i).join('/')}//${segments.slice(i).join('/')}`);
  out.add(path.replace(/\/([^/]+)$/, '/%2e/$1'));
  out.delete(path);
  return [...out];
}

function expectNotFound(answer: Answer, what: string) {
  expect(answer.status, what).toBe(404);
  expect(answer.contentType, what).toMatch(/^application\/json/);
  expect(JSON.parse(answer.body), what).toMatchObject({ error: 'not_found' });
}

interface Endpoint { method: string; path: string; form: Record<string, string>; client?: Credentials }

/** The limited endpoints, each with the request it takes (under the issuer's path). */
function limitedEndpoints(client: Credentials): Endpoint[] {
  const grant = { grant_type: 'client_credentials', resource };
  return [
    { method: 'POST', path: '/token', form: grant, client },
    { method: 'POST', path: '/token/introspection', form: { token: 'x' }, client },
    { method: 'POST', path: '/token/revocation', form: { token: 'x' }, client },
    { method: 'POST', path: '/request', form: { response_type: 'code', scope: 'openid' }, client },
    { method: 'GET', path: '/me', form: {} },
    { method: 'POST', path: '/reg', form: { x: 'y' } },
    { method: 'POST', path: '/interaction/nope/login', form: { username: 'a', password: 'b' } },
    { method: 'POST', path: '/interaction/nope/confirm', form: { decision: 'allow' } },
    { method: 'POST', path: '/interaction/nope/abort', form: {} },
    { method: 'GET', path: '/auth', form: {} },
    { method: 'GET', path: '/session/end', form: {} },
    { method: 'POST', path: '/session/end/confirm', form: { xsrf: 'x' } },
  ];
}

describe.each(['', '/issuer'])('endpoint spellings (issuer path "%s")', (issuerPath) => {
  it('serves each limited endpoint under one spelling and answers 404, never 500, to every other', async () => {
    const { url } = await server(issuerPath);
    const origin = new URL(url).origin;
    const client = await serviceClient(tdb.database.db, [roleName]);
    for (const endpoint of limitedEndpoints(client)) {
      const canonical = `${issuerPath}${endpoint.path}`;
      const served = await send(origin, endpoint.method, canonical, endpoint);
      expect(served.status, canonical).not.toBe(404);
      expect(served.status, canonical).toBeLessThan(500);
      const spellings = variants(canonical);
      if (issuerPath) spellings.push(`${issuerPath.toUpperCase()}${endpoint.path}`, `${issuerPath}/${endpoint.path}`);
      for (const spelling of spellings) expectNotFound(await send(origin, endpoint.method, spelling, endpoint), `${endpoint.method} ${spelling}`);
    }
  });

  it('gives no token from any spelling to a client backed off for wrong secrets', async () => {
    const { url } = await server(issuerPath, { RATE_LIMIT_INVALID_CLIENT: '2', RATE_LIMIT_INVALID_CLIENT_BLOCK_SECONDS: '30' });
    const origin = new URL(url).origin;
    const client = await serviceClient(tdb.database.db, [roleName]);
    const form = { grant_type: 'client_credentials', resource };
    const canonical = `${issuerPath}/token`;
    for (let i = 0; i < 3; i += 1) {
      expect((await send(origin, 'POST', canonical, { form, client: { id: client.id, secret: 'wrong' } })).status).toBe(401);
    }
    expect((await send(origin, 'POST', canonical, { form, client })).status).toBe(429);
    for (const spelling of variants(canonical)) {
      expectNotFound(await send(origin, 'POST', spelling, { form, client }), spelling);
    }
  });

  it('counts every request that reaches a limited endpoint in its bucket', async () => {
    const { url } = await server(issuerPath, {
      RATE_LIMIT_ADDRESS: '2', RATE_LIMIT_CLIENT: '0', RATE_LIMIT_SIGN_IN_ADDRESS: '2', RATE_LIMIT_AUTHORIZE_ADDRESS: '2',
    });
    const origin = new URL(url).origin;
    const client = await serviceClient(tdb.database.db, [roleName]);
    const buckets: { method: string; path: string; form?: Record<string, string>; served: number }[] = [
      { method: 'POST', path: '/token', form: { grant_type: 'client_credentials', resource }, served: 200 },
      { method: 'POST', path: '/interaction/nope/login', form: { username: 'a', password: 'b' }, served: 400 },
      { method: 'GET', path: '/session/end', served: 200 },
    ];
    // Spellings interleaved with the real requests: refused, and the bucket holds exactly two.
    for (const { method, path, form, served } of buckets) {
      const canonical = `${issuerPath}${path}`;
      const statuses: number[] = [];
      for (const spelling of [...variants(canonical).slice(0, 4), canonical, canonical, canonical, ...variants(canonical)]) {
        statuses.push((await send(origin, method, spelling, { form, client })).status);
      }
      expect(statuses.filter((status) => status !== 404), canonical).toEqual([served, served, 429]);
    }
  });
});

describe('the gateway decision endpoint', () => {
  it('answers only at its exact spellings: every variant is a 404, never a decision', async () => {
    const { url } = await server('/issuer');
    const origin = new URL(url).origin;
    for (const path of ['/gate/auth-request', '/gate/forward-auth']) {
      const served = await send(origin, 'GET', path);
      // Served (the gateway sent too little: 400), not a 404.
      expect(served.status, path).toBe(400);
      for (const spelling of variants(path)) expectNotFound(await send(origin, 'GET', spelling), `GET ${spelling}`);
    }
    // Envoy's prefix: the rest is the original path, normalised by the endpoint itself.
    for (const spelling of ['/GATE/ext-authz/x', '/gate/Ext-authz/x', '/gate//ext-authz/x', '/gate/%65xt-authz/x', '/x/../gate/ext-authz/x', '/gate/ext-authzx']) {
      expectNotFound(await send(origin, 'GET', spelling), `GET ${spelling}`);
    }
  });
});

describe('no spelling of any endpoint is a server error', () => {
  it('answers every method on every spelling of every path with less than 500', async () => {
    const { url } = await server('/issuer');
    const origin = new URL(url).origin;
    const discovery = await (await fetch(`${url}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
    const paths = new Set<string>([
      '/issuer/interaction/nope', '/issuer/interaction/nope/login', '/issuer/interaction/nope/confirm', '/issuer/interaction/nope/abort',
      '/issuer/auth/nope', '/issuer/reg/nope', '/issuer/session/end/confirm', '/issuer/session/end/success',
      '/issuer/.well-known/openid-configuration', '/.well-known/oauth-authorization-server/issuer',
      '/healthz', '/readyz', '/metrics', '/admin/v1/openapi.json', '/admin/v1/clients',
      '/gate/auth-request', '/gate/forward-auth', '/gate/ext-authz/orders/1',
    ]);
    for (const [name, value] of Object.entries(discovery)) {
      if (name.endsWith('_endpoint') || name === 'jwks_uri') paths.add(new URL(String(value)).pathname);
    }
    const seen: string[] = [];
    for (const path of paths) {
      for (const spelling of [path, ...variants(path)]) {
        for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS']) {
          const answer = await send(origin, method, spelling, method === 'POST' || method === 'PUT' ? { form: { a: 'b' } } : {});
          if (answer.status >= 500) seen.push(`${method} ${spelling}: ${answer.status}`);
        }
      }
    }
    expect(seen).toEqual([]);
  }, 60_000);
});
