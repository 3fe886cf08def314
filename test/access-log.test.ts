// The access log as an operator reads it: one JSON line per request on every listener (public and
// admin), with the route and path (never the query string), status, duration, request id, the
// client's address (X-Forwarded-For only with TRUST_PROXY, its last entry) and the client that
// authenticated. Admin requests are counted in the request metrics too.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/platform/logger.ts';
import { adminCall, adminClient, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { freePort } from './support/process.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

interface Line {
  level: number; msg: string; requestId?: string; method?: string; path?: string; route?: string; status?: number;
  ms?: number; address?: string; clientId?: string; code?: unknown; signal?: unknown;
}

let tdb: TestDatabase;
let direct: TestServer;
let proxied: TestServer;
let adminListener: http.Server;
let adminUrl: string;
const lines: Line[] = [];
const proxiedLines: Line[] = [];
let resource: string;
let client: { id: string; secret: string };

function sinkInto(target: Line[]): Writable {
  return new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n').filter(Boolean)) target.push(JSON.parse(text) as Line);
      done();
    },
  });
}

/** The access-log line of the request that answered with `requestId`. */
function lineOf(target: Line[], requestId: string | null): Line {
  const found = target.filter((line) => line.msg === 'request' && line.requestId === requestId);
  expect(found, `one access-log line for request ${requestId}`).toHaveLength(1);
  return found[0]!;
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  const adminPort = await freePort();
  direct = await startServer(tdb.database, { ADMIN_PORT: String(adminPort) }, '', { logger: createLogger('info', sinkInto(lines)) });
  // The admin listener, as src/serve.ts makes it when ADMIN_PORT is set.
  adminListener = http.createServer(direct.app.adminKoa.callback());
  await new Promise<void>((resolve) => adminListener.listen(0, '127.0.0.1', resolve));
  adminUrl = `http://127.0.0.1:${(adminListener.address() as AddressInfo).port}`;
  proxied = await startServer(tdb.database, { TRUST_PROXY: 'true' }, '', { logger: createLogger('info', sinkInto(proxiedLines)) });
  resource = (await api(tdb.database.db, { scopes: ['jobs:run'] })).identifier;
  client = await serviceClient(tdb.database.db, [(await role(tdb.database.db, [{ api: resource, scopes: ['jobs:run'] }])).name]);
});

afterAll(async () => {
  adminListener?.closeAllConnections();
  await new Promise((resolve) => adminListener?.close(resolve));
  await direct?.close();
  await proxied?.close();
  await tdb?.drop();
});

describe('the access log of the public listener', () => {
  it('names the client that got a token, its address and the request', async () => {
    const res = await postForm(`${direct.url}/token`, { grant_type: 'client_credentials', resource }, client);
    expect(res.status).toBe(200);
    const line = lineOf(lines, res.headers.get('x-request-id'));
    expect(line).toMatchObject({
      level: 30, method: 'POST', path: '/token', route: '/token', status: 200, address: '127.0.0.1', clientId: client.id,
    });
    expect(line.ms).toEqual(expect.any(Number));
  });

  it('names the client on a JWT introspection, which answers without the provider', async () => {
    const token = (await postForm(`${direct.url}/token`, { grant_type: 'client_credentials', resource }, client)).body.access_token as string;
    const res = await postForm(`${direct.url}/token/introspection`, { token }, client);
    expect(res.body.active).toBe(true);
    expect(lineOf(lines, res.headers.get('x-request-id'))).toMatchObject({ route: '/token/introspection', status: 200, clientId: client.id });
  });

  it('logs a failed request with its status and no client: a presented client_id is not an authenticated one', async () => {
    const res = await postForm(`${direct.url}/token`, { grant_type: 'client_credentials', resource }, { id: client.id, secret: 'wrong-secret' });
    expect(res.status).toBe(401);
    const line = lineOf(lines, res.headers.get('x-request-id'));
    expect(line).toMatchObject({ method: 'POST', route: '/token', status: 401, address: '127.0.0.1' });
    expect(line).not.toHaveProperty('clientId');
  });

  it('never logs the query string, which may carry codes and tokens', async () => {
    const res = await fetch(`${direct.url}/nowhere?code=the-secret-code&access_token=the-secret-token`);
    expect(res.status).toBe(404);
    const line = lineOf(lines, res.headers.get('x-request-id'));
    expect(line).toMatchObject({ path: '/nowhere', route: 'other', status: 404 });
    expect(JSON.stringify(lines)).not.toMatch(/the-secret-(code|token)/);
  });

  it('masks the uid of a sign-in interaction, which lets a browser continue it', async () => {
    const uid = 'Gx4u1V_the-interaction-uid-QkM2';
    const requests: [string, string, string][] = [
      ['GET', `/interaction/${uid}`, '/interaction/:uid'],
      ['POST', `/interaction/${uid}/login`, '/interaction/:uid/login'],
      ['GET', `/auth/${uid}`, '/auth/:uid'],
    ];
    for (const [method, path, logged] of requests) {
      const res = await fetch(`${direct.url}${path}`, {
        method, redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: method === 'POST' ? 'username=a&password=b' : undefined,
      });
      expect(lineOf(lines, res.headers.get('x-request-id')), path).toMatchObject({ method, path: logged });
    }
    expect(JSON.stringify(lines)).not.toContain(uid);
  });

  it('takes the address from X-Forwarded-For only with TRUST_PROXY, and then its last entry (the proxy\'s)', async () => {
    const headers = { 'x-forwarded-for': '203.0.113.9, 198.51.100.7' };
    const trusted = await fetch(`${proxied.url}/healthz`, { headers });
    expect(lineOf(proxiedLines, trusted.headers.get('x-request-id')).address).toBe('198.51.100.7');
    const untrusted = await fetch(`${direct.url}/healthz`, { headers });
    expect(lineOf(lines, untrusted.headers.get('x-request-id')).address).toBe('127.0.0.1');
  });
});

describe('the access log of the admin listener (ADMIN_PORT)', () => {
  it('logs every admin request with the calling admin client, and counts it in the request metrics', async () => {
    const admin = await adminClient(tdb.database.db);
    const token = await tokenFor(direct.url, admin);
    const res = await adminCall(adminUrl, 'GET', '/apis', { token });
    expect(res.status).toBe(200);
    expect(lineOf(lines, res.headers.get('x-request-id'))).toMatchObject({
      method: 'GET', path: '/admin/v1/apis', route: '/admin', status: 200, address: '127.0.0.1', clientId: admin.id,
    });

    const refused = await adminCall(adminUrl, 'GET', '/apis', { token: 'not-a-token' });
    expect(refused.status).toBe(401);
    const line = lineOf(lines, refused.headers.get('x-request-id'));
    expect(line).toMatchObject({ route: '/admin', status: 401 });
    expect(line).not.toHaveProperty('clientId');

    const metrics = await direct.app.metrics.registry.getSingleMetricAsString('postern_http_requests_total');
    expect(metrics).toContain('postern_http_requests_total{route="/admin",method="GET",status="200"} 1');
    expect(metrics).toContain('postern_http_requests_total{route="/admin",method="GET",status="401"} 1');
  });

  it('logs requests off the admin prefix too', async () => {
    const res = await fetch(`${adminUrl}/token`);
    expect(res.status).toBe(404);
    expect(lineOf(lines, res.headers.get('x-request-id'))).toMatchObject({ path: '/token', route: '/token', status: 404 });
  });
});

describe('redaction of codes', () => {
  it('hides an authorization code but keeps an exit code', () => {
    const written: Line[] = [];
    const logger = createLogger('info', sinkInto(written));
    logger.info({ code: 'an-authorization-code' }, 'code');
    logger.info({ worker: 7, code: 1, signal: null }, 'exit');
    logger.info({ worker: 8, code: null, signal: 'SIGKILL' }, 'killed');
    expect(written.map(({ code, signal }) => ({ code, signal }))).toEqual([
      { code: '[redacted]', signal: undefined },
      { code: 1, signal: null },
      { code: null, signal: 'SIGKILL' },
    ]);
  });
});
