// Request limits on the protocol endpoints, over real HTTP: the request past a limit gets 429
// with Retry-After and an RFC 6749-style body; per client, per address, per-client overrides,
// the invalid_client back-off; and counters shared by two servers through Redis.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomId } from '../src/domain/crypto.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { authorizeUrl, pkce } from './support/browser.ts';
import { CALLBACK, signInWorld } from './support/sign-in.ts';

type Credentials = { id: string; secret: string };

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

let namespaces = 0;
/** Counters of one test: its own key prefix, since Redis and the test database outlive a test. */
const namespace = () => `test-${process.pid}-${Date.now()}-${++namespaces}`;

async function server(env: Record<string, string>): Promise<TestServer> {
  const started = await startServer(tdb.database, {
    RATE_LIMIT_WINDOW_SECONDS: '60', RATE_LIMIT_KEY_PREFIX: namespace(), ...(onPostgres ? { RATE_LIMIT_STORE: 'postgres', DATABASE_URL: tdb.url! } : {}), ...env,
  });
  servers.push(started);
  return started;
}

const newClient = () => serviceClient(tdb.database.db, [roleName]);
const token = (url: string, client: Credentials) =>
  postForm(`${url}/token`, { grant_type: 'client_credentials', resource }, client);

/** A form POST as if from `address` (the server trusts X-Forwarded-For: TRUST_PROXY=true). */
async function postFrom(address: string, url: string, form: Record<string, string>, client?: Credentials) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': address };
  if (client) headers.authorization = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
  const response = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(form).toString() });
  const text = await response.text();
  let body: any = text;
  try { body = JSON.parse(text); } catch {}
  return { status: response.status, headers: response.headers, body };
}

/** A form POST sent chunked (Transfer-Encoding: chunked, no Content-Length), in two chunks. */
function postChunked(url: string, form: Record<string, string>): Promise<{ status: number; body: any }> {
  const text = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (response) => {
      let received = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { received += chunk; });
      response.on('end', () => {
        let body: any = received;
        try { body = JSON.parse(received); } catch {}
        resolve({ status: response.statusCode!, body });
      });
    });
    request.on('error', reject);
    expect(request.getHeader('content-length')).toBeUndefined();
    request.write(text.slice(0, 10));
    setTimeout(() => request.end(text.slice(10)), 20);
  });
}

function expectTooMany(res: Awaited<ReturnType<typeof postForm>>) {
  expect(res.status, JSON.stringify(res.body)).toBe(429);
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(res.body).toEqual({ error: 'temporarily_unavailable', error_description: `too many requests; retry after ${retryAfter} s` });
}

describe(`rate limits (${onPostgres ? 'Postgres' : 'memory'} counters)`, () => {
  it('refuses the request past the per-client limit, for that client only', async () => {
    const { url } = await server({ RATE_LIMIT_CLIENT: '3' });
    const [a, b] = [await newClient(), await newClient()];
    for (let i = 0; i < 3; i += 1) expect((await token(url, a)).status).toBe(200);
    expectTooMany(await token(url, a));
    // Introspection and revocation count against the same limit.
    expectTooMany(await postForm(`${url}/token/introspection`, { token: 'x' }, a));
    expect((await token(url, b)).status).toBe(200);
    // client_secret_post is counted too (the id is read from the form body).
    const post = await postForm(`${url}/token`, { grant_type: 'client_credentials', resource, client_id: a.id, client_secret: a.secret });
    expectTooMany(post);
  });

  it('gives a client its own limit when configured', async () => {
    const [a, b] = [await newClient(), await newClient()];
    const { url } = await server({ RATE_LIMIT_CLIENT: '2', RATE_LIMIT_CLIENT_OVERRIDES: `${a.id}=5,${b.id}=0` });
    for (let i = 0; i < 5; i += 1) expect((await token(url, a)).status).toBe(200);
    expectTooMany(await token(url, a));
    for (let i = 0; i < 8; i += 1) expect((await token(url, b)).status).toBe(200);
  });

  it('refuses the request past the per-address limit, whichever client sends it', async () => {
    const { url } = await server({ RATE_LIMIT_ADDRESS: '4', RATE_LIMIT_CLIENT: '0' });
    const clients = [await newClient(), await newClient()];
    for (let i = 0; i < 4; i += 1) expect((await token(url, clients[i % 2]!)).status).toBe(200);
    expectTooMany(await token(url, clients[0]!));
    expectTooMany(await postForm(`${url}/token/revocation`, { token: 'x' }, clients[1]!));
    // Discovery and JWKS are not limited.
    expect((await fetch(`${url}/jwks`)).status).toBe(200);
  });

  it('limits posts to the sign-in pages and registration per address: a page for people, JSON for clients', async () => {
    const { url } = await server({ RATE_LIMIT_SIGN_IN_ADDRESS: '2' });
    const post = (path: string) => fetch(`${url}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=a&password=b',
    });
    // Under the limit the request goes on (an unknown interaction: its own error page).
    for (let i = 0; i < 2; i += 1) expect((await post('/interaction/nope/login')).status).not.toBe(429);
    const page = await post('/interaction/nope/login');
    expect(page.status).toBe(429);
    expect(Number(page.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('Too many attempts');
    expect(html).toMatch(/Try again in \d+ seconds\./);
    const registration = await post('/reg');
    expect(registration.status).toBe(429);
    expect(await registration.json()).toMatchObject({ error: 'temporarily_unavailable' });
  });

  it('limits the authorization and logout endpoints per address, with a page, before anything is stored', async () => {
    const { url } = await server({ RATE_LIMIT_AUTHORIZE_ADDRESS: '4', RATE_LIMIT_SIGN_IN_ADDRESS: '100' });
    const world = await signInWorld(tdb.database.db);
    const { db } = tdb.database;
    const rows = async (model: string) => Number((await db.selectFrom('oidc_payloads').where('model', '=', model)
      .select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const authorize = () => fetch(authorizeUrl(url, {
      client_id: world.client.id, response_type: 'code', redirect_uri: CALLBACK, scope: 'openid',
      code_challenge: pkce().challenge, code_challenge_method: 'S256', state: 'x'.repeat(200),
    }), { redirect: 'manual' });
    const [interactions, sessions] = [await rows('Interaction'), await rows('Session')];
    // No cookies, no credentials: each of these stores a row.
    expect((await authorize()).status).toBe(303);
    expect((await authorize()).status).toBe(303);
    expect((await fetch(`${url}/session/end`)).status).toBe(200);
    expect((await fetch(`${url}/session/end/confirm`, { method: 'POST', body: new URLSearchParams({ xsrf: 'x' }) })).status).toBe(400);
    expect(await rows('Interaction')).toBe(interactions + 2);
    expect(await rows('Session')).toBe(sessions + 1);
    // Past the limit: a page for the person, Retry-After, and nothing stored.
    for (const refused of [await authorize(), await fetch(`${url}/session/end`), await fetch(`${url}/session/end/confirm`, { method: 'POST' })]) {
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await refused.text()).toMatch(/Too many attempts[\s\S]*Try again in \d+ seconds\./);
    }
    expect(await rows('Interaction')).toBe(interactions + 2);
    expect(await rows('Session')).toBe(sessions + 1);
    // A bucket of its own: the sign-in forms and the token endpoint still answer.
    expect((await postForm(`${url}/interaction/nope/login`, { username: 'a', password: 'b' })).status).toBe(400);
    expect((await token(url, await newClient())).status).toBe(200);
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toContain('postern_rate_limited_total{limiter="authorize_address"} 3');
  });

  it('backs off a client_id after repeated invalid_client, even with the right secret', async () => {
    const { url } = await server({ RATE_LIMIT_INVALID_CLIENT: '2', RATE_LIMIT_INVALID_CLIENT_BLOCK_SECONDS: '30' });
    const [a, b] = [await newClient(), await newClient()];
    const wrong = { id: a.id, secret: 'wrong-secret' };
    for (let i = 0; i < 3; i += 1) {
      const res = await token(url, wrong);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    }
    const blocked = await token(url, a);
    expectTooMany(blocked);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(20);
    expect((await token(url, b)).status).toBe(200);
  });

  it('keeps no per-client count for an id that names no client: only the address limit applies', async () => {
    const { url } = await server({ RATE_LIMIT_INVALID_CLIENT: '1', RATE_LIMIT_CLIENT: '1', RATE_LIMIT_ADDRESS: '1000' });
    // The shape of a real id, so it reaches the lookup; nobody holds it. A count per made-up id
    // would be an entry per request in every process's memory.
    const nobody = { id: randomId(), secret: 'wrong-secret' };
    for (let i = 0; i < 4; i += 1) {
      const res = await token(url, nobody);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    }
    // A real client is counted as before: its second request is over RATE_LIMIT_CLIENT.
    const real = await newClient();
    expect((await token(url, real)).status).toBe(200);
    expectTooMany(await token(url, real));
  });

  it('limits pushed authorization requests (RFC 9126) like the token endpoint, and in the authorization bucket', async () => {
    const par = (url: string, client: Credentials) => postForm(`${url}/request`, { response_type: 'code', scope: 'openid', redirect_uri: 'https://app.example/cb' }, client);
    // Per address.
    let { url } = await server({ RATE_LIMIT_ADDRESS: '2', RATE_LIMIT_CLIENT: '0', RATE_LIMIT_AUTHORIZE_ADDRESS: '100' });
    const a = await newClient();
    for (let i = 0; i < 2; i += 1) expect((await par(url, a)).status).not.toBe(429);
    expectTooMany(await par(url, a));
    // Per client, one count with the token endpoint.
    ({ url } = await server({ RATE_LIMIT_CLIENT: '2', RATE_LIMIT_AUTHORIZE_ADDRESS: '100' }));
    for (let i = 0; i < 2; i += 1) expect((await par(url, a)).status).not.toBe(429);
    expectTooMany(await token(url, a));
    // The invalid_client back-off, shared with the token endpoint.
    ({ url } = await server({ RATE_LIMIT_INVALID_CLIENT: '2', RATE_LIMIT_AUTHORIZE_ADDRESS: '100' }));
    for (let i = 0; i < 3; i += 1) {
      const res = await par(url, { id: a.id, secret: 'wrong-secret' });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    }
    expectTooMany(await par(url, a));
    expectTooMany(await token(url, a));
    // It stores authorization state: it counts in the authorization endpoint's bucket too.
    ({ url } = await server({ RATE_LIMIT_AUTHORIZE_ADDRESS: '2' }));
    for (let i = 0; i < 2; i += 1) expect((await par(url, a)).status).not.toBe(429);
    expectTooMany(await par(url, a));
    expect((await fetch(`${url}/auth?client_id=x`, { redirect: 'manual' })).status).toBe(429);
  });

  it('limits every other path the provider serves per address, except discovery and JWKS', async () => {
    const { url } = await server({ RATE_LIMIT_ADDRESS: '1', RATE_LIMIT_CLIENT: '0' });
    const paths = ['/me', '/reg/nope', '/auth/nope', '/interaction/nope', '/session/end/success', '/token'];
    // The first request takes the address's only allowance; every path after it is refused.
    expect((await fetch(`${url}/me`)).status).not.toBe(429);
    for (const path of paths) expect((await fetch(`${url}${path}`, { redirect: 'manual' })).status, path).toBe(429);
    for (const path of ['/jwks', '/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      expect((await fetch(`${url}${path}`)).status, path).toBe(200);
    }
  });

  it('reads the client_id of a chunked body (no Content-Length): per-client limits and back-off apply', async () => {
    let { url } = await server({ RATE_LIMIT_CLIENT: '1' });
    const a = await newClient();
    const form = (client: Credentials) => ({ grant_type: 'client_credentials', resource, client_id: client.id, client_secret: client.secret });
    expect((await postChunked(`${url}/token`, form(a))).status).toBe(200);
    const refused = await postChunked(`${url}/token`, form(a));
    expect(refused.status).toBe(429);
    expect(refused.body.error).toBe('temporarily_unavailable');
    // The back-off too: two wrong secrets, then the right one is refused.
    ({ url } = await server({ RATE_LIMIT_INVALID_CLIENT: '1', RATE_LIMIT_INVALID_CLIENT_BLOCK_SECONDS: '30' }));
    for (let i = 0; i < 2; i += 1) expect((await postChunked(`${url}/token`, form({ id: a.id, secret: 'wrong-secret' }))).status).toBe(401);
    expect((await postChunked(`${url}/token`, form(a))).status).toBe(429);
  });

  it('counts an IPv6 /64 as one address, and an IPv4-mapped IPv6 address as the IPv4 one', async () => {
    const { url } = await server({ TRUST_PROXY: 'true', RATE_LIMIT_ADDRESS: '2', RATE_LIMIT_CLIENT: '0' });
    const a = await newClient();
    const grant = { grant_type: 'client_credentials', resource };
    expect((await postFrom('2001:db8:1:2::1', `${url}/token`, grant, a)).status).toBe(200);
    expect((await postFrom('2001:db8:1:2:aaaa:bbbb:cccc:dddd', `${url}/token`, grant, a)).status).toBe(200);
    expectTooMany(await postFrom('2001:db8:1:2:ffff::3', `${url}/token`, grant, a));
    // The next /64 is another network.
    expect((await postFrom('2001:db8:1:3::1', `${url}/token`, grant, a)).status).toBe(200);
    expect((await postFrom('::ffff:192.0.2.7', `${url}/token`, grant, a)).status).toBe(200);
    expect((await postFrom('::ffff:c000:207', `${url}/token`, grant, a)).status).toBe(200);
    expectTooMany(await postFrom('192.0.2.7', `${url}/token`, grant, a));
  });

  it('backs off a client only from the address that failed: wrong secrets elsewhere do not lock it out', async () => {
    const { url } = await server({ TRUST_PROXY: 'true', RATE_LIMIT_INVALID_CLIENT: '2', RATE_LIMIT_INVALID_CLIENT_BLOCK_SECONDS: '30' });
    const a = await newClient();
    const grant = { grant_type: 'client_credentials', resource };
    for (let i = 0; i < 3; i += 1) {
      expect((await postFrom('198.51.100.1', `${url}/token`, grant, { id: a.id, secret: 'wrong-secret' })).status).toBe(401);
    }
    expectTooMany(await postFrom('198.51.100.1', `${url}/token`, grant, a));
    // The client itself, at its own address, is not held up.
    for (let i = 0; i < 3; i += 1) expect((await postFrom('203.0.113.9', `${url}/token`, grant, a)).status).toBe(200);
  });

  it('keeps the per-client allowance for the client: requests presenting its id that fail or are refused give it back', async () => {
    const { url } = await server({ TRUST_PROXY: 'true', RATE_LIMIT_CLIENT: '3', RATE_LIMIT_INVALID_CLIENT: '0' });
    const a = await newClient();
    const grant = { grant_type: 'client_credentials', resource };
    for (let i = 0; i < 6; i += 1) {
      expect((await postFrom('198.51.100.1', `${url}/token`, grant, { id: a.id, secret: 'wrong-secret' })).status).toBe(401);
    }
    // Naming the client with no credentials at all, in the body.
    for (let i = 0; i < 4; i += 1) {
      expect((await postFrom('198.51.100.1', `${url}/token`, { ...grant, client_id: a.id })).status).toBeGreaterThanOrEqual(400);
    }
    for (let i = 0; i < 3; i += 1) expect((await postFrom('203.0.113.9', `${url}/token`, grant, a)).status).toBe(200);
    expectTooMany(await postFrom('203.0.113.9', `${url}/token`, grant, a));
  });

  it('refuses a flood over the address limit before it looks up any client', async () => {
    const started = await server({ RATE_LIMIT_ADDRESS: '2', RATE_LIMIT_CLIENT: '1000' });
    const lookups = vi.spyOn(started.app.directory, 'client');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) statuses.push((await token(started.url, { id: randomId(), secret: 'wrong-secret' })).status);
    expect(statuses).toEqual([401, 401, 429, 429, 429, 429]);
    // The two allowed requests looked their client up (the limiter and the provider); the four
    // refused ones cost nothing.
    const before = lookups.mock.calls.length;
    for (let i = 0; i < 4; i += 1) await token(started.url, { id: randomId(), secret: 'wrong-secret' });
    expect(lookups.mock.calls.length).toBe(before);
    lookups.mockRestore();
  });

  it('counts refusals and tokens in /metrics', async () => {
    const { url } = await server({ RATE_LIMIT_CLIENT: '1' });
    const a = await newClient();
    expect((await token(url, a)).status).toBe(200);
    expectTooMany(await token(url, a));
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toContain('postern_rate_limited_total{limiter="client"} 1');
    expect(text).toContain(`postern_tokens_issued_total{grant_type="client_credentials",api="${resource}"} 1`);
    expect(text).toMatch(/postern_http_requests_total\{route="\/token",method="POST",status="429"\} 1/);
    expect(text).toMatch(/postern_http_request_duration_seconds_bucket\{le="\+Inf",route="\/token",method="POST",status="200"\} 1/);
  });
});

async function redisAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(6379, '127.0.0.1');
    socket.setTimeout(500);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

const withRedis = await redisAvailable();

describe.skipIf(!withRedis)('rate limits shared through Redis', () => {
  it('holds one limit across two servers', async () => {
    const env = { REDIS_URL: 'redis://127.0.0.1:6379', RATE_LIMIT_STORE: 'redis', RATE_LIMIT_CLIENT: '4', RATE_LIMIT_KEY_PREFIX: namespace() };
    const [one, two] = [await server(env), await server(env)];
    const a = await newClient();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) statuses.push((await token((i % 2 ? two : one).url, a)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    expect(one.app.limiters.store).toBe('redis');
  });

  it('counts in memory unless a shared store is configured', async () => {
    const local = await server({ RATE_LIMIT_STORE: 'memory' });
    expect(local.app.limiters.store).toBe('memory');
  });
});
