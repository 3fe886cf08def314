// The admin API authorises every request against what the caller holds now, not what its token
// says it held: a client or a person demoted on one server is refused with its old token on
// another at the very next request, and a token never does more than it was issued for. Two
// servers share one database, each with its own pool, change feed and caches, as two processes.
// Also: who the audit log names for a person's request, and which address it records behind a
// proxy on the admin listener.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, type Database } from '../src/db/database.ts';
import { ADMIN_SCOPES, POSTERN_API } from '../src/services/admin.ts';
import { listAuditEvents } from '../src/services/audit-queries.ts';
import { createClient } from '../src/services/clients.ts';
import {
  assignRoleToClient, assignRoleToUser, createRole, grantScopes, unassignRoleFromClient, unassignRoleFromUser,
} from '../src/services/roles.ts';
import { createUser, setUserEnabled } from '../src/services/users.ts';
import { adminCall, tokenFor } from './support/admin.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { CALLBACK, exchangeCode, PASSWORD, signIn, type World } from './support/sign-in.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let second: Database | undefined;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  tdb = await createTestDatabase();
  a = await startServer(tdb.database);
  // On Postgres, B has a connection pool and a change feed of its own, as another process would.
  second = onPostgres ? openPostgres(tdb.url!, { poolSize: 5 }) : undefined;
  // One public name for both, as behind a load balancer.
  b = await startServer(second ?? tdb.database, { ISSUER: a.url });
}, 60_000);

afterAll(async () => {
  await b?.close();
  await a?.close();
  await second?.close();
  await tdb?.drop();
});

/** A role of `scopes` on urn:postern. */
const adminRole = (scopes: string[] = ADMIN_SCOPES) =>
  createRole(tdb.database.db, { name: unique('admins'), grants: [{ api: POSTERN_API, scopes }] }, NO_AUDIT);

/**
 * A person holding `roleName`, and a first-party web app they sign in with; `admin()` signs them
 * in and returns their access token for urn:postern.
 */
async function adminPerson(roleName: string) {
  const db = tdb.database.db;
  const username = unique('dana');
  const user = await createUser(db, { username, password: PASSWORD, roles: [roleName] }, NO_AUDIT);
  const app = await createClient(db, {
    name: unique('console'), grantTypes: ['authorization_code'], redirectUris: [CALLBACK], firstParty: true,
  }, NO_AUDIT);
  const world = {
    api: { identifier: POSTERN_API }, user, username, client: { id: app.client.clientId, secret: app.clientSecret! },
  } as unknown as World;
  const admin = async (scope = ADMIN_SCOPES.join(' ')) => {
    const flow = await signIn(a.url, world, { scope: `openid ${scope}`, resource: POSTERN_API });
    const res = await exchangeCode(a.url, world, flow.code, flow.verifier, { resource: POSTERN_API });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.access_token as string;
  };
  return { user, appId: app.client.clientId, admin };
}

describe('a demoted client', () => {
  it('is refused with its old token on the other server at the next request (20 rounds, no waiting)', async () => {
    const db = tdb.database.db;
    const admins = await adminRole();
    const admin = await serviceClient(db, [admins.name]);
    const token = await tokenFor(a.url, admin);
    const stale: string[] = [];
    for (let round = 0; round < 20; round += 1) {
      // B has the client cached with the role before every demotion.
      const before = await adminCall(b.url, 'GET', '/keys', { token });
      if (before.status !== 200) stale.push(`round ${round}: ${before.status} while holding the role`);
      await unassignRoleFromClient(db, admins.name, admin.id, NO_AUDIT);
      const after = await adminCall(b.url, 'GET', '/keys', { token });
      if (after.status !== 403) stale.push(`round ${round}: B answered ${after.status} to a demoted admin`);
      await assignRoleToClient(db, admins.name, admin.id, NO_AUDIT);
    }
    expect(stale).toEqual([]);
  });

  it('can neither create clients nor give itself its role back (the review\'s case)', async () => {
    const db = tdb.database.db;
    const admins = await adminRole();
    const admin = await serviceClient(db, [admins.name]);
    const token = await tokenFor(a.url, admin);
    await unassignRoleFromClient(db, admins.name, admin.id, NO_AUDIT);
    const create = await adminCall(b.url, 'POST', '/clients', { token, body: { name: unique('sneaky') } });
    expect(create.status).toBe(403);
    expect(create.body).toMatchObject({ error: 'insufficient_scope', message: 'this request needs the admin:write scope' });
    expect(create.headers.get('www-authenticate')).toBe('Bearer realm="postern-admin", error="insufficient_scope", scope="admin:write"');
    const regrant = await adminCall(a.url, 'PUT', `/roles/${admins.id}/clients/${admin.id}`, { token });
    expect(regrant.status).toBe(403);
    expect((await adminCall(a.url, 'GET', `/roles/${admins.id}`, { token })).status).toBe(403);
    const roleNow = await adminCall(a.url, 'GET', `/roles/${admins.id}`, { token: await tokenFor(a.url, await serviceClient(db, [(await adminRole()).name])) });
    expect(roleNow.body.clients).toEqual([]);
  });

  it('loses exactly the scope taken from its role, on the other server at once', async () => {
    const db = tdb.database.db;
    const admins = await adminRole();
    const admin = await serviceClient(db, [admins.name]);
    const token = await tokenFor(b.url, admin);
    expect((await adminCall(b.url, 'POST', '/clients', { token, body: { name: unique('ok') } })).status).toBe(201);
    await adminCall(a.url, 'DELETE', `/roles/${admins.id}/grants`, {
      token: await tokenFor(a.url, await serviceClient(db, [(await adminRole()).name])),
      body: { api: POSTERN_API, scopes: ['admin:write'] },
    });
    expect((await adminCall(b.url, 'POST', '/clients', { token, body: { name: unique('no') } })).status).toBe(403);
    expect((await adminCall(b.url, 'GET', '/clients', { token })).status).toBe(200);
  });
});

describe('a token never does more than it was issued for', () => {
  it('stays read-only when its role gains admin:write later (intersection, not union)', async () => {
    const db = tdb.database.db;
    const readers = await adminRole(['admin:read']);
    const admin = await serviceClient(db, [readers.name]);
    const token = await tokenFor(a.url, admin);
    await grantScopes(db, readers.name, { api: POSTERN_API, scopes: ['admin:write'] }, NO_AUDIT);
    for (const server of [a, b]) {
      expect((await adminCall(server.url, 'GET', '/keys', { token })).status).toBe(200);
      expect((await adminCall(server.url, 'POST', '/clients', { token, body: { name: unique('no') } })).status).toBe(403);
    }
    // A token issued now carries the new scope.
    const fresh = await tokenFor(a.url, admin);
    expect((await adminCall(b.url, 'POST', '/clients', { token: fresh, body: { name: unique('yes') } })).status).toBe(201);
  });
});

describe('a person on the admin API', () => {
  it('is refused with their old token on the other server once demoted, and again allowed when restored', async () => {
    const db = tdb.database.db;
    const admins = await adminRole();
    const person = await adminPerson(admins.name);
    const token = await person.admin();
    expect((await adminCall(b.url, 'GET', '/keys', { token })).status).toBe(200);
    await unassignRoleFromUser(db, admins.name, person.user.id, NO_AUDIT);
    const refused = await adminCall(b.url, 'GET', '/keys', { token });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('insufficient_scope');
    expect((await adminCall(b.url, 'POST', '/clients', { token, body: { name: unique('no') } })).status).toBe(403);
    await assignRoleToUser(db, admins.name, person.user.id, NO_AUDIT);
    expect((await adminCall(b.url, 'GET', '/keys', { token })).status).toBe(200);
  });

  it('keeps a read-only token read-only when their role gains admin:write', async () => {
    const db = tdb.database.db;
    const admins = await adminRole(['admin:read']);
    const person = await adminPerson(admins.name);
    const token = await person.admin('admin:read');
    await grantScopes(db, admins.name, { api: POSTERN_API, scopes: ['admin:write'] }, NO_AUDIT);
    expect((await adminCall(b.url, 'GET', '/keys', { token })).status).toBe(200);
    expect((await adminCall(b.url, 'POST', '/clients', { token, body: { name: unique('no') } })).status).toBe(403);
  });

  it('is refused (401) once disabled', async () => {
    const admins = await adminRole();
    const person = await adminPerson(admins.name);
    const token = await person.admin();
    await setUserEnabled(tdb.database.db, person.user.id, false, NO_AUDIT);
    expect((await adminCall(b.url, 'GET', '/keys', { token })).status).toBe(401);
  });

  it('is the actor the audit log names, with the app they used', async () => {
    const db = tdb.database.db;
    const admins = await adminRole();
    const person = await adminPerson(admins.name);
    const token = await person.admin();
    const readOnly = await person.admin('admin:read');
    const target = await serviceClient(db);
    const created = await adminCall(a.url, 'POST', '/roles', { token, body: { name: unique('by-person') } });
    expect(created.status).toBe(201);
    expect((await adminCall(a.url, 'PATCH', `/clients/${target.id}`, { token, body: { enabled: false } })).status).toBe(200);
    expect((await adminCall(a.url, 'POST', '/roles', { token: readOnly, body: { name: unique('no') } })).status).toBe(403);
    await a.app.audit.flush();
    const events = await db.selectFrom('audit_events').selectAll()
      .where('actor_id', '=', person.user.id).where('type', 'in', ['role.created', 'client.updated', 'admin.access_denied'])
      .orderBy('id').execute();
    expect(events.map((event) => [event.type, event.actor_type, event.client_id, event.user_id, event.target_id])).toEqual([
      ['role.created', 'user', person.appId, person.user.id, created.body.id],
      ['client.updated', 'user', person.appId, person.user.id, target.id],
      ['admin.access_denied', 'user', person.appId, person.user.id, null],
    ]);
    // Found by the client acted on, by the app and by the person alike.
    const types = async (query: Parameters<typeof listAuditEvents>[1]) =>
      (await listAuditEvents(db, query)).items.filter((item) => item.actor.id === person.user.id).map((item) => item.type);
    expect(await types({ client: target.name })).toEqual(['client.updated']);
    expect(await types({ client: person.appId, type: ['role.*', 'client.*', 'admin.*'] }))
      .toEqual(['admin.access_denied', 'client.updated', 'role.created']);
    expect(await types({ user: person.user.id, type: ['role.*', 'client.*'] })).toEqual(['client.updated', 'role.created']);
  });
});

describe('the introspect permission', () => {
  it('counts what the caller holds now, on the other server at once', async () => {
    const db = tdb.database.db;
    const orders = await api(db, { scopes: ['orders:read'] });
    const svc = await serviceClient(db, [(await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }])).name]);
    const introspectors = await role(db, [{ api: POSTERN_API, scopes: ['introspect'] }]);
    const auditor = await serviceClient(db, [introspectors.name]);
    const token = await tokenFor(a.url, svc, orders.identifier);
    const introspect = () => postForm(`${b.url}/token/introspection`, { token }, auditor);
    expect((await introspect()).body.active).toBe(true);
    await unassignRoleFromClient(db, introspectors.name, auditor.id, NO_AUDIT);
    expect((await introspect()).body).toEqual({ active: false });
  });
});

describe('the admin listener behind a proxy (ADMIN_PORT, TRUST_PROXY)', () => {
  it('records the address the proxy appended, as the public listener does', async () => {
    const admin = await serviceClient(tdb.database.db, [(await adminRole()).name]);
    const separate = await startServer(tdb.database, { ADMIN_PORT: '1', TRUST_PROXY: 'true' });
    const shared = await startServer(tdb.database, { TRUST_PROXY: 'true' });
    const listener = http.createServer(separate.app.adminKoa.callback());
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    try {
      const adminUrl = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
      // The caller wrote the first entry; the proxy appended the last one.
      const headers = { 'x-forwarded-for': '203.0.113.66, 198.51.100.7' };
      for (const [server, url] of [[separate, adminUrl], [shared, shared.url]] as const) {
        const token = await tokenFor(server.url, admin);
        const res = await adminCall(url, 'POST', '/roles', { token, body: { name: unique('proxied') }, headers });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        await server.app.audit.flush();
        const row = await tdb.database.db.selectFrom('audit_events').select('source_address')
          .where('type', '=', 'role.created').where('target_id', '=', res.body.id).executeTakeFirstOrThrow();
        expect(row.source_address, url).toBe('198.51.100.7');
      }
    } finally {
      listener.closeAllConnections();
      await new Promise((resolve) => listener.close(resolve));
      await shared.close();
      await separate.close();
    }
  });
});
