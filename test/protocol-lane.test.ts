// The protocol lane (src/http/protocol-lane.ts): plain token and introspection requests are
// answered before Koa, everything else goes on to Koa untouched, and either way a request passes
// the same checks once: request limits counted once (a request handed on to Koa is not counted
// again), the invalid_client back-off shared with Koa's chain, the request guard, the headers,
// metrics and access-log line the middleware gives. A second listener serves the same app with a
// spy in front of Koa's middleware, so each test knows which requests reached Koa.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { startServer, type TestServer } from './support/server.ts';

type Credentials = { id: string; secret: string };
interface Spied { url: string; server: TestServer; reachedKoa: string[]; lines: Record<string, unknown>[]; close(): Promise<void> }

let tdb: TestDatabase;
let resource: string;
let roleName: string;
const opened: Spied[] = [];
let prefixes = 0;

beforeAll(async () => {
  tdb = await createTestDatabase();
  const orders = await api(tdb.database.db, { scopes: ['orders:read'] });
  resource = orders.identifier;
  roleName = (await role(tdb.database.db, [{ api: resource, scopes: ['orders:read'] }])).name;
});

afterAll(async () => {
  for (const each of opened) await each.close();
  await tdb.drop();
});

/** A server, and a second listener on its app with a spy in front of Koa's middleware. */
async function spied(env: Record<string, string> = {}): Promise<Spied> {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Record<string, unknown>);
      done();
    },
  });
  const server = await startServer(tdb.database, {
    RATE_LIMIT_KEY_PREFIX: `lane-${process.pid}-${++prefixes}`, RATE_LIMIT_WINDOW_SECONDS: '60',
    ...(onPostgres ? { RATE_LIMIT_STORE: 'postgres', DATABASE_URL: tdb.url! } : {}), ...env,
  }, '', { logger: createLogger('info', sink) });
  const reachedKoa: string[] = [];
  const spy: Koa.Middleware = (ctx, next) => {
    reachedKoa.push(`${ctx.method} ${ctx.url}`);
    return next();
  };
  server.app.koa.middleware.unshift(spy);
  const listener = http.createServer(server.app.koa.callback());
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as AddressInfo;
  const result: Spied = {
    url: `http://127.0.0.1:${port}`,
    server,
    reachedKoa,
    lines,
    close: async () => {
      listener.closeAllConnections();
      await new Promise((resolve) => listener.close(resolve));
      await server.close();
    },
  };
  opened.push(result);
  return result;
}

const basic = (c: Credentials) => `Basic ${Buffer.from(`${c.id}:${c.secret}`).toString('base64')}`;

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
  const text = await response.text();
  let json: any = text;
  try { json = JSON.parse(text); } catch {}
  return { status: response.status, headers: response.headers, body: json };
}

const tokenRequest = (url: string, c: Credentials, extra: Record<string, string> = {}) =>
  post(`${url}/token`, new URLSearchParams({ grant_type: 'client_credentials', resource }).toString(), { authorization: basic(c), ...extra });

describe('the protocol lane', () => {
  it('answers the plain token and introspection requests before Koa, with the headers, metrics and log line of the middleware', async () => {
    const s = await spied();
    const client = await serviceClient(tdb.database.db, [roleName]);
    const issued = await tokenRequest(s.url, client, { 'x-request-id': 'lane-token-1' });
    expect(issued.status).toBe(200);
    expect(issued.headers.get('x-request-id')).toBe('lane-token-1');
    expect(issued.headers.get('cache-control')).toBe('no-store');
    expect(issued.headers.get('pragma')).toBe('no-cache');
    expect(issued.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const introspected = await post(`${s.url}/token/introspection`, new URLSearchParams({ token: issued.body.access_token }).toString(), { authorization: basic(client) });
    expect(introspected.status).toBe(200);
    expect(introspected.body).toMatchObject({ active: true, client_id: client.id, aud: resource });
    expect(s.reachedKoa).toEqual([]);

    const line = s.lines.find((l) => l.msg === 'request' && l.requestId === 'lane-token-1');
    expect(line).toMatchObject({ method: 'POST', path: '/token', route: '/token', status: 200, clientId: client.id, address: '127.0.0.1' });
    const { metrics } = s.server.app;
    const requests = (await metrics.httpRequests.get()).values;
    expect(requests.find((v) => v.labels.route === '/token/introspection' && v.labels.status === '200')?.value).toBe(1);
    const introspections = (await metrics.introspections.get()).values;
    expect(introspections.find((v) => v.labels.result === 'active')?.value).toBe(1);
  });

  it('hands every other request to Koa untouched, once', async () => {
    const s = await spied();
    const client = await serviceClient(tdb.database.db, [roleName]);
    const plain = new URLSearchParams({ grant_type: 'client_credentials', resource }).toString();
    const cases: [string, () => Promise<{ status: number; body: any }>, number][] = [
      ['a wrong secret', () => tokenRequest(s.url, { ...client, secret: 'x'.repeat(43) }), 401],
      ['a query string', () => post(`${s.url}/token?x=1`, plain, { authorization: basic(client) }), 200],
      ['another spelling', () => post(`${s.url}/Token`, plain, { authorization: basic(client) }), 404],
      ['an unknown scope', () => tokenRequest(s.url, client, {}).then(() => post(`${s.url}/token`, `${plain}&scope=orders:write`, { authorization: basic(client) })), 400],
      ['a NUL in the body', () => post(`${s.url}/token`, `${plain}&scope=%00`, { authorization: basic(client) }), 400],
      ['invalid UTF-8 in a header read', () => post(`${s.url}/token`, plain, { authorization: basic(client), 'x-forwarded-host': 'h\u00ff' }), 400],
      ['a form with a charset it does not name plainly', () => post(`${s.url}/token`, plain, { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded; charset=latin1' }), 200],
    ];
    for (const [name, send, status] of cases) {
      const before = s.reachedKoa.length;
      const answer = await send();
      expect(answer.status, `${name}: ${JSON.stringify(answer.body)}`).toBe(status);
      expect(s.reachedKoa.length - before, name).toBeGreaterThanOrEqual(1);
    }
    // The unknown-scope case's first request was plain: answered before Koa.
    expect(s.reachedKoa.filter((r) => r === 'POST /token')).toHaveLength(5);
  });

  it('counts each request once against the address limit, answered early or handed on', async () => {
    const s = await spied({ RATE_LIMIT_ADDRESS: '6', RATE_LIMIT_CLIENT: '0' });
    const client = await serviceClient(tdb.database.db, [roleName]);
    const wrong = { ...client, secret: 'y'.repeat(43) };
    const statuses: number[] = [];
    for (const c of [client, wrong, client, wrong, client, wrong, client, wrong]) statuses.push((await tokenRequest(s.url, c)).status);
    expect(statuses).toEqual([200, 401, 200, 401, 200, 401, 429, 429]);
    const refused = await tokenRequest(s.url, client);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.headers.get('pragma')).toBe('no-cache');
    expect(refused.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.stringMatching(/^too many requests; retry after \d+ s$/) });
    // Refused requests were answered before Koa too; the three wrong secrets reached it.
    expect(s.reachedKoa).toHaveLength(3);
  });

  it('gives back the per-client allowance of a request handed on that fails, and backs off as Koa does', async () => {
    const s = await spied({ RATE_LIMIT_CLIENT: '3', RATE_LIMIT_INVALID_CLIENT: '2', RATE_LIMIT_INVALID_CLIENT_BLOCK_SECONDS: '60' });
    const client = await serviceClient(tdb.database.db, [roleName]);
    const wrong = { ...client, secret: 'z'.repeat(43) };
    // A failure is given back: three good requests still fit after it.
    expect((await tokenRequest(s.url, wrong)).status).toBe(401);
    for (let i = 0; i < 3; i += 1) expect((await tokenRequest(s.url, client)).status).toBe(200);
    expect((await tokenRequest(s.url, client)).status).toBe(429);
    // Failures past the allowed two back the pair off: the right secret is refused too, before Koa.
    const other = await serviceClient(tdb.database.db, [roleName]);
    const otherWrong = { ...other, secret: 'w'.repeat(43) };
    for (let i = 0; i < 3; i += 1) expect((await tokenRequest(s.url, otherWrong)).status).toBe(401);
    const reached = s.reachedKoa.length;
    const backedOff = await tokenRequest(s.url, other);
    expect(backedOff.status).toBe(429);
    expect(s.reachedKoa.length).toBe(reached);
  });

  it('lets each connection go while draining', async () => {
    const s = await spied();
    const client = await serviceClient(tdb.database.db, [roleName]);
    s.server.app.drain();
    const answer = await tokenRequest(s.url, client);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('connection')).toBe('close');
    expect(s.reachedKoa).toEqual([]);
  });

  it('is off with FAST_PATHS=false: everything goes through Koa and the provider', async () => {
    const s = await spied({ FAST_PATHS: 'false' });
    const client = await serviceClient(tdb.database.db, [roleName]);
    expect((await tokenRequest(s.url, client)).status).toBe(200);
    expect(s.reachedKoa).toEqual(['POST /token']);
  });
});
