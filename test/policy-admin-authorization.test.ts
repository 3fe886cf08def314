// Who may call the admin API, route by route: admin:read for GET, admin:write for every other
// method; the exact RFC 6750 challenges; the shape of a Bearer header that is read at all; and
// what the audit log says of a refusal and of the caller of a change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredScope } from '../src/http/admin/openapi.ts';
import { ADMIN_ROUTES } from '../src/http/admin/routes.ts';
import { adminCall, adminClient, tokenFor, type Credentials } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { unique } from './support/fixtures.ts';
import { startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let readerClient: Credentials;
let writerClient: Credentials;
let reader: string;
let writer: string;
let nobody: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  writerClient = await adminClient(tdb.database.db);
  readerClient = await adminClient(tdb.database.db, ['admin:read']);
  writer = await tokenFor(server.url, writerClient);
  reader = await tokenFor(server.url, readerClient);
  nobody = await tokenFor(server.url, await adminClient(tdb.database.db, ['admin:write']));
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

async function auditRows(type: string, since: Date) {
  await server.app.audit.flush({ counts: true });
  return tdb.database.db.selectFrom('audit_events').selectAll().where('type', '=', type).where('occurred_at', '>=', since).orderBy('id').execute();
}

describe('the scope each route needs', () => {
  it('is admin:read for GET and admin:write for every other method, on every route', () => {
    for (const route of ADMIN_ROUTES) {
      expect(requiredScope(route), `${route.method} ${route.path}`).toBe(route.method === 'get' ? 'admin:read' : 'admin:write');
    }
    expect(['post', 'put', 'patch', 'delete'].map((method) => requiredScope({ method } as never))).toEqual(['admin:write', 'admin:write', 'admin:write', 'admin:write']);
  });

  it('is enforced: a read token reads and may not write; a write-only token may not read', async () => {
    expect((await adminCall(server.url, 'GET', '/roles', { token: reader })).status).toBe(200);
    for (const [method, path, body] of [['POST', '/roles', { name: unique('r') }], ['PATCH', '/roles/none', {}], ['DELETE', '/roles/none', undefined]] as const) {
      const res = await adminCall(server.url, method, path, { token: reader, body });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.error).toBe('insufficient_scope');
      expect(res.body.message).toBe('this request needs the admin:write scope');
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="postern-admin", error="insufficient_scope", scope="admin:write"');
    }
    const read = await adminCall(server.url, 'GET', '/roles', { token: nobody });
    expect(read.status).toBe(403);
    expect(read.body.message).toBe('this request needs the admin:read scope');
    expect(read.headers.get('www-authenticate')).toBe('Bearer realm="postern-admin", error="insufficient_scope", scope="admin:read"');
    expect((await adminCall(server.url, 'POST', '/roles', { token: writer, body: { name: unique('r') } })).status).toBe(201);
  });
});

describe('the Bearer header', () => {
  it('is read in any case of "Bearer", and a token with base64 padding is checked, not refused as malformed', async () => {
    expect((await adminCall(server.url, 'GET', '/roles', { headers: { authorization: `bearer ${reader}` } })).status).toBe(200);
    expect((await adminCall(server.url, 'GET', '/roles', { headers: { authorization: `BEARER ${reader}` } })).status).toBe(200);
    const padded = await adminCall(server.url, 'GET', '/roles', { headers: { authorization: 'Bearer abc+/~._-==' } });
    expect(padded.status).toBe(401);
    expect(padded.headers.get('www-authenticate')).toBe('Bearer realm="postern-admin", error="invalid_token"');
  });

  it('without a token, or not of the Bearer form, gets a challenge with no error code (RFC 6750 §3.1)', async () => {
    for (const authorization of [undefined, 'Bearer', `Bearer  ${reader}`, `Bearer ${reader} x`, `x Bearer ${reader}`, 'Bearer a=b', 'Basic dXNlcjpwYXNz']) {
      const res = await adminCall(server.url, 'GET', '/roles', { headers: authorization === undefined ? {} : { authorization } });
      expect(res.status, authorization).toBe(401);
      expect(res.body.error, authorization).toBe('invalid_token');
      expect(res.body.message).toBe('a valid Postern access token for urn:postern is required');
      expect(res.headers.get('www-authenticate'), authorization).toBe('Bearer realm="postern-admin"');
    }
  });

  it('with a token that is not usable, gets invalid_token in the challenge', async () => {
    const res = await adminCall(server.url, 'GET', '/roles', { token: `${reader.slice(0, -2)}xx` });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="postern-admin", error="invalid_token"');
  });
});

describe('the audit log of the admin API', () => {
  it('records a 403 with the client, the route, the method and the scope it lacked', async () => {
    const since = new Date(Date.now() - 1000);
    await adminCall(server.url, 'DELETE', '/roles/none', { token: reader });
    const rows = await auditRows('admin.access_denied', since);
    const row = rows.filter((r) => r.actor_id === readerClient.id).at(-1)!;
    expect(row).toMatchObject({ actor_type: 'client', actor_id: readerClient.id, client_id: readerClient.id, user_id: null, outcome: 'failure', source_address: '127.0.0.1' });
    expect(row.request_id).toBeTruthy();
    expect(row.details).toEqual({ reason: 'insufficient_scope', status: 403, method: 'DELETE', route: 'DELETE /roles/{id}', scopes: ['admin:write'] });
  });

  it('records a 401 as anonymous, without scopes', async () => {
    const since = new Date(Date.now() - 1000);
    await adminCall(server.url, 'PATCH', '/apis/none', { token: 'not-a-token', body: {} });
    const rows = await auditRows('admin.access_denied', since);
    const row = rows.find((r) => r.details.route === 'PATCH /apis/{id}')!;
    expect(row).toMatchObject({ actor_type: 'anonymous', actor_id: null, client_id: null, user_id: null });
    expect(row.details).toMatchObject({ reason: 'invalid_token', status: 401, method: 'PATCH', count: 1 });
    expect(row.details).not.toHaveProperty('scopes');
  });

  it('names the client that made a change as its actor', async () => {
    const since = new Date(Date.now() - 1000);
    const name = unique('audited');
    expect((await adminCall(server.url, 'POST', '/roles', { token: writer, body: { name } })).status).toBe(201);
    const rows = await auditRows('role.created', since);
    const row = rows.find((r) => r.target_id === name || JSON.stringify(r.details).includes(name))!;
    expect(row).toMatchObject({ actor_type: 'client', actor_id: writerClient.id, user_id: null, source_address: '127.0.0.1' });
  });
});
