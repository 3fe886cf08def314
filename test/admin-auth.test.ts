// Who may call the admin API, and how it fails: every error status in the one error format, and
// no 500 for malformed input. Also revoke-tokens, which cuts off a client's JWT and opaque tokens.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorBody as errorSchema } from '../src/http/admin/errors.ts';
import { updateApi } from '../src/services/apis.ts';
import { setClientEnabled } from '../src/services/clients.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { adminCall, adminClient, tokenFor } from './support/admin.ts';
import { api, role, serviceClient } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;
let writer: string;
let reader: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  writer = await tokenFor(server.url, await adminClient(tdb.database.db));
  reader = await tokenFor(server.url, await adminClient(tdb.database.db, ['admin:read']));
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Checks the one error format and returns the body. */
function expectError(res: { status: number; body: any; headers: Headers }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(errorSchema.parse(res.body).error).toBe(code);
  expect(res.body.requestId).toBe(res.headers.get('x-request-id'));
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return res.body;
}

describe('admin API: tokens', () => {
  it('answers 401 with a Bearer challenge without a token, or with a malformed one', async () => {
    const none = await adminCall(server.url, 'GET', '/apis');
    expectError(none, 401, 'invalid_token');
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="postern-admin"');
    for (const authorization of ['Bearer', 'Bearer not a token', 'Basic dXNlcjpwYXNz', `bearer ${'x'.repeat(50)}`]) {
      const res = await adminCall(server.url, 'GET', '/apis', { headers: { authorization } });
      expectError(res, 401, 'invalid_token');
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="postern-admin"/);
    }
  });

  it('lets a read-scoped token read but not write (403 insufficient_scope)', async () => {
    expect((await adminCall(server.url, 'GET', '/apis', { token: reader })).status).toBe(200);
    const write = await adminCall(server.url, 'POST', '/roles', { token: reader, body: { name: 'nope' } });
    expectError(write, 403, 'insufficient_scope');
    expect(write.headers.get('www-authenticate')).toBe('Bearer realm="postern-admin", error="insufficient_scope", scope="admin:write"');
  });

  it('answers 403 to a token for urn:postern without admin scopes', async () => {
    const introspector = await adminClient(tdb.database.db, ['introspect']);
    const token = await tokenFor(server.url, introspector);
    expectError(await adminCall(server.url, 'GET', '/apis', { token }), 403, 'insufficient_scope');
  });

  it('answers 401 to a token for another audience', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['admin:read', 'admin:write'] });
    const svc = await serviceClient(db, [(await role(db, [{ api: orders.identifier, scopes: ['admin:read'] }])).name]);
    const token = await tokenFor(server.url, svc, orders.identifier);
    expectError(await adminCall(server.url, 'GET', '/apis', { token }), 401, 'invalid_token');
  });

  it('answers 401 to a tampered token', async () => {
    const [header, payload, signature] = writer.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forged = Buffer.from(JSON.stringify({ ...claims, scope: 'admin:read admin:write introspect' })).toString('base64url');
    // One character of the signature changed (to one it is not: the same would be no tampering).
    const flipped = `${signature.slice(0, 10)}${signature[10] === 'A' ? 'B' : 'A'}${signature.slice(11)}`;
    for (const token of [`${header}.${forged}.${signature}`, `${header}.${payload}.${flipped}`, `${header}.${payload}.`]) {
      expectError(await adminCall(server.url, 'GET', '/apis', { token }), 401, 'invalid_token');
    }
  });

  it('answers 401 to a revoked token and to a token of a disabled client', async () => {
    const db = tdb.database.db;
    const admin = await adminClient(db);
    const revoked = await tokenFor(server.url, admin);
    expect((await adminCall(server.url, 'GET', '/keys', { token: revoked })).status).toBe(200);
    const res = await postForm(`${server.url}/token/revocation`, { token: revoked }, admin);
    expect(res.status).toBe(200);
    expectError(await adminCall(server.url, 'GET', '/keys', { token: revoked }), 401, 'invalid_token');

    const other = await adminClient(db);
    const token = await tokenFor(server.url, other);
    await setClientEnabled(db, other.id, false, NO_AUDIT);
    expectError(await adminCall(server.url, 'GET', '/keys', { token }), 401, 'invalid_token');
  });

  it('answers 401 to an expired token', async () => {
    const db = tdb.database.db;
    await updateApi(db, 'urn:postern', { accessTokenTtl: 1 }, NO_AUDIT);
    try {
      const token = await tokenFor(server.url, await adminClient(db));
      await sleep(2100);
      expectError(await adminCall(server.url, 'GET', '/keys', { token }), 401, 'invalid_token');
    } finally {
      await updateApi(db, 'urn:postern', { accessTokenTtl: 300 }, NO_AUDIT);
    }
  });
});

describe('admin API: errors', () => {
  const call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    adminCall(server.url, method, path, { token: writer, body, headers });

  it('names the offending fields: wrong types, unknown fields, missing ones (400)', async () => {
    const wrong = expectError(await call('POST', '/apis', { identifier: 42, scopes: 'a b' }), 400, 'invalid_input');
    expect(wrong.fields.sort()).toEqual(['body.identifier', 'body.scopes']);
    const unknown = expectError(await call('POST', '/roles', { name: 'x', colour: 'red' }), 400, 'invalid_input');
    expect(unknown.fields).toEqual(['body.colour']);
    const missing = expectError(await call('POST', '/clients', {}), 400, 'invalid_input');
    expect(missing.fields).toEqual(['body.name']);
    const service = expectError(await call('POST', '/apis', { identifier: 'not a uri' }), 400, 'invalid_input');
    expect(service.fields).toEqual(['identifier']);
    const query = expectError(await call('GET', '/clients?limit=0&colour=red'), 400, 'invalid_input');
    expect(query.fields.sort()).toEqual(['query.colour', 'query.limit']);
    for (const body of ['[]', 'null', '"x"', '{"name": {"$gt": ""}}', JSON.stringify({ name: 'a'.repeat(101) }),
      '{"__proto__": {"admin": true}, "name": "p"}', `${'['.repeat(5000)}${']'.repeat(5000)}`]) {
      expectError(await call('POST', '/clients', body), 400, 'invalid_input');
    }
    for (const path of ['/clients?limit=1&limit=2', '/clients?enabled=yes', '/clients?limit=1e400', '/clients?cursor=']) {
      expectError(await call('GET', path), 400, 'invalid_input');
    }
    // Percent-encoding that does not decode as UTF-8 is refused before any lookup.
    expect(expectError(await call('GET', '/clients/%E0%A4%A'), 400, 'invalid_input').fields).toEqual(['path']);
  });

  it('answers 400 to a body that is not JSON, 415 to another content type, 413 to a huge body', async () => {
    const bad = expectError(await call('POST', '/roles', '{"name":'), 400, 'invalid_input');
    expect(bad.fields).toEqual(['body']);
    expectError(await call('POST', '/roles', 'name=x', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
    expectError(await call('POST', '/roles', '{"name":"x"}', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
    const huge = JSON.stringify({ name: 'x', description: 'a'.repeat(100_000) });
    expectError(await call('POST', '/roles', huge), 413, 'payload_too_large');
    // Without a Content-Length (chunked), the limit holds while reading.
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(huge));
        controller.close();
      },
    });
    const chunked = await fetch(`${server.url}/admin/v1/roles`, {
      method: 'POST', body: stream, duplex: 'half',
      headers: { authorization: `Bearer ${writer}`, 'content-type': 'application/json' },
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(((await chunked.json()) as { error: string }).error).toBe('payload_too_large');
  });

  it('answers 404 to unknown ids and paths, 405 to a wrong method, 409 to a conflict', async () => {
    expectError(await call('GET', '/clients/nobody'), 404, 'not_found');
    expectError(await call('GET', '/nothing-here'), 404, 'not_found');
    expectError(await adminCall(server.url, 'GET', '/../../admin'), 404, 'not_found');
    expectError(await call('PUT', '/apis'), 405, 'method_not_allowed');
    const { name } = await serviceClient(tdb.database.db);
    expectError(await call('POST', '/clients', { name }), 409, 'conflict');
  });

  it('answers 500 server_error with the request id and no stack when something breaks', async () => {
    const broken = await createTestDatabase();
    const other = await startServer(broken.database);
    try {
      const token = await tokenFor(other.url, await adminClient(broken.database.db));
      await sql`drop table api_scopes cascade`.execute(broken.database.db);
      const res = await adminCall(other.url, 'GET', '/apis', { token, headers: { 'x-request-id': 'trace-123' } });
      const body = expectError(res, 500, 'server_error');
      expect(body).toEqual({ error: 'server_error', message: 'unexpected error; quote request id trace-123', requestId: 'trace-123' });
      expect(res.text).not.toMatch(/api_scopes|\bat /);
    } finally {
      await other.close();
      await broken.drop();
    }
  });
});

describe('admin API: revoke-tokens', () => {
  const introspect = (client: { id: string; secret: string }, token: string) =>
    postForm(`${server.url}/token/introspection`, { token }, client).then((res) => res.body.active as boolean);

  it("makes the client's earlier JWT and opaque tokens inactive, and not its later ones", async () => {
    const db = tdb.database.db;
    const jwtApi = await api(db, { scopes: ['read'] });
    const opaqueApi = await api(db, { scopes: ['read'], tokenFormat: 'opaque' });
    const both = await role(db, [{ api: jwtApi.identifier, scopes: ['read'] }, { api: opaqueApi.identifier, scopes: ['read'] }]);
    const svc = await serviceClient(db, [both.name]);
    const bystander = await serviceClient(db, [both.name]);
    const jwt = await tokenFor(server.url, svc, jwtApi.identifier);
    const opaque = await tokenFor(server.url, svc, opaqueApi.identifier);
    const untouched = await tokenFor(server.url, bystander, jwtApi.identifier);
    expect(jwt.split('.')).toHaveLength(3);
    expect(opaque.split('.')).toHaveLength(1);
    expect(await introspect(svc, jwt)).toBe(true);
    expect(await introspect(svc, opaque)).toBe(true);

    const res = await adminCall(server.url, 'POST', `/clients/${svc.name}/revoke-tokens`, { token: writer });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ clientId: svc.id, deletedArtifacts: 1 });
    expect(Date.parse(res.body.revokedBefore)).toBeLessThanOrEqual(Date.now());

    expect(await introspect(svc, jwt)).toBe(false);
    expect(await introspect(svc, opaque)).toBe(false);
    expect(await introspect(bystander, untouched)).toBe(true);

    // iat has one-second resolution: a token from the next second on is not cut off.
    await sleep(1000 - (Date.now() % 1000) + 50);
    const later = await tokenFor(server.url, svc, jwtApi.identifier);
    expect(await introspect(svc, later)).toBe(true);
  });

  it('holds at once on another server process sharing the database (its cache is told)', async () => {
    const db = tdb.database.db;
    const jwtApi = await api(db, { scopes: ['read'] });
    const svc = await serviceClient(db, [(await role(db, [{ api: jwtApi.identifier, scopes: ['read'] }])).name]);
    const second = await startServer(tdb.database);
    try {
      const token = await tokenFor(second.url, svc, jwtApi.identifier);
      const onSecond = () => postForm(`${second.url}/token/introspection`, { token }, svc).then((res) => res.body.active);
      expect(await onSecond()).toBe(true); // the second server has the client cached now
      expect((await adminCall(server.url, 'POST', `/clients/${svc.id}/revoke-tokens`, { token: writer })).status).toBe(200);
      expect(await onSecond()).toBe(false);
    } finally {
      await second.close();
    }
  });

  it("makes an admin client's own earlier tokens useless for the admin API", async () => {
    const admin = await adminClient(tdb.database.db);
    const token = await tokenFor(server.url, admin);
    expect((await adminCall(server.url, 'POST', `/clients/${admin.id}/revoke-tokens`, { token })).status).toBe(200);
    expectError(await adminCall(server.url, 'GET', '/keys', { token }), 401, 'invalid_token');
    expectError(await adminCall(server.url, 'POST', '/clients/nobody/revoke-tokens', { token: writer }), 404, 'not_found');
  });
});
