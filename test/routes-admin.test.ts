// Route policies through the admin API over real HTTP, with an admin token from Postern's own
// token endpoint: every change answered, audited, refused where it must be, and in the server's
// route table; `routes check` with real tokens against the roles their holders have now.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import * as r from '../src/http/admin/route-schemas.ts';
import * as s from '../src/http/admin/schemas.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { checkRoute } from '../src/services/route-check.ts';
import { unassignRoleFromClient } from '../src/services/roles.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let call: ReturnType<typeof adminClientFor>;
let identifier: string;
let host: string;
let readerRole: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const admin = await adminClient(tdb.database.db);
  call = adminClientFor(server.url, await tokenFor(server.url, admin));
  const created = await api(tdb.database.db, { scopes: ['orders:read', 'orders:write', 'orders:admin'] });
  identifier = created.identifier;
  host = `${unique('orders')}.example`;
  readerRole = (await role(tdb.database.db, [{ api: identifier, scopes: ['orders:read'] }])).name;
}, 120_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

/** The server's table: at once on Postgres (the write waited for it); within a second embedded. */
async function served(method: string, path: string, onHost = host) {
  const match = () => server.app.routes.match({ host: onHost, method, path }).rule?.id ?? null;
  return onPostgres ? match() : (await new Promise((resolve) => setTimeout(resolve, 1200)), match());
}

describe('admin API: route rules', () => {
  it('creates, lists, shows, updates and deletes a rule; each change is in the route table and the audit log', async () => {
    const created = await call('POST', '/routes', {
      api: identifier, host: host.toUpperCase(), methods: ['get'], path: '/orders/{id}', scopesAll: ['orders:read'], cacheSeconds: 30,
    });
    expect(created.status, created.text).toBe(201);
    const rule = r.routeView.parse(created.body);
    expect(rule).toMatchObject({ api: identifier, host, methods: ['GET'], path: '/orders/{id}', scopesAll: ['orders:read'], cacheSeconds: 30, public: false });
    expect(rule.id).toMatch(/^route_/);
    expect(await served('GET', '/orders/7')).toBe(rule.id);

    const listed = s.list(r.routeView).parse((await call('GET', `/routes?host=${host}`)).body).items;
    expect(listed.map((item) => item.id)).toEqual([rule.id]);
    expect((await call('GET', `/routes?api=${encodeURIComponent(identifier)}`)).body.items).toHaveLength(1);
    expect(r.routeView.parse((await call('GET', `/routes/${rule.id}`)).body).id).toBe(rule.id);

    const updated = await call('PATCH', `/routes/${rule.id}`, { methods: ['GET', 'HEAD'], roles: [readerRole] });
    expect(updated.status, updated.text).toBe(200);
    expect(r.routeView.parse(updated.body)).toMatchObject({ methods: ['GET', 'HEAD'], roles: [readerRole], scopesAll: ['orders:read'], path: '/orders/{id}' });
    expect(await served('HEAD', '/orders/7')).toBe(rule.id);

    expect((await call('DELETE', `/routes/${rule.id}`)).status).toBe(204);
    expect((await call('GET', `/routes/${rule.id}`)).status).toBe(404);
    expect(await served('GET', '/orders/7')).toBe(null);

    await server.app.audit.flush();
    const events = s.auditEventPage.parse((await call('GET', '/audit-events?type=route.*&limit=50')).body).items
      .filter((event) => event.target?.id === rule.id);
    expect(events.map((event) => event.type).sort()).toEqual(['route.created', 'route.deleted', 'route.updated']);
    expect(events.find((event) => event.type === 'route.updated')?.details).toMatchObject({ path: '/orders/{id}', fields: ['methods', 'roles'] });
  });

  it('refuses bad rules with a clear 4xx', async () => {
    const refused = async (body: Record<string, unknown>, status: number, message: RegExp) => {
      const reply = await call('POST', '/routes', { api: identifier, host, path: '/x', ...body });
      expect(reply.status, reply.text).toBe(status);
      expect(reply.body.message ?? reply.text).toMatch(message);
    };
    await refused({ scopesAll: ['orders:delete'] }, 400, /does not define orders:delete/);
    await refused({ scopesAny: ['nope'] }, 400, /does not define nope/);
    await refused({ path: '/orders*' }, 400, /whole segment/);
    await refused({ path: 'orders' }, 400, /starts with \//);
    await refused({ path: '/a/../b' }, 400, /\. or \.\./);
    await refused({ host: 'https://x.example' }, 400, /not a host/);
    await refused({ methods: ['GET /'] }, 400, /not an HTTP method/);
    await refused({ public: true, scopesAll: ['orders:read'] }, 400, /public rule/);
    await refused({ roles: ['no-such-role'] }, 404, /unknown role/);
    await refused({ clients: ['no-such-client'] }, 404, /unknown client/);
    await refused({ api: 'https://nowhere.internal' }, 404, /unknown API/);
    await refused({ api: 'urn:postern' }, 403, /built in/);
    await refused({ surprise: true }, 400, /./);

    const first = await call('POST', '/routes', { api: identifier, host, methods: ['PUT', 'POST'], path: '/tie/{a}', scopesAll: ['orders:write'] });
    expect(first.status).toBe(201);
    // Same host, same shape, a method in common: neither would be the most specific.
    await refused({ methods: ['POST'], path: '/tie/{b}' }, 409, new RegExp(`rule ${first.body.id} already covers`));
    await refused({ path: '/tie/{b}' }, 409, /already covers/);
    const other = await call('POST', '/routes', { api: identifier, host, methods: ['DELETE'], path: '/tie/{b}', scopesAll: ['orders:admin'] });
    expect(other.status).toBe(201);
    expect((await call('PATCH', `/routes/${other.body.id}`, { methods: ['PUT'] })).status).toBe(409);
  });

  it('refuses to delete an API, or to remove a scope, that rules need', async () => {
    const own = await api(tdb.database.db, { scopes: ['a:read', 'a:write'] });
    const rule = await call('POST', '/routes', { api: own.identifier, path: '/a/*', scopesAny: ['a:read'] });
    expect(rule.status).toBe(201);
    const removeScope = await call('PATCH', `/apis/${own.id}`, { removeScopes: ['a:read'] });
    expect(removeScope.status).toBe(409);
    expect(removeScope.text).toContain(rule.body.id);
    expect((await call('PATCH', `/apis/${own.id}`, { removeScopes: ['a:write'] })).status).toBe(200);
    const deleteApi = await call('DELETE', `/apis/${own.id}`);
    expect(deleteApi.status).toBe(409);
    expect(deleteApi.text).toMatch(/route rule/);
    expect((await call('DELETE', `/routes/${rule.body.id}`)).status).toBe(204);
    expect((await call('DELETE', `/apis/${own.id}`)).status).toBe(204);
  });

  it('checks a request and exports every rule', async () => {
    const exportHost = `${unique('export')}.example`;
    const ids: string[] = [];
    for (const body of [
      { methods: ['GET'], path: '/items/{id}', scopesAll: ['orders:read'] },
      { path: '/items/*', scopesAny: ['orders:write', 'orders:admin'] },
      { path: '/status', public: true },
      { methods: ['POST'], path: '/items', roles: [readerRole], senderConstrained: 'dpop' },
    ]) {
      const reply = await call('POST', '/routes', { api: identifier, host: exportHost, ...body });
      expect(reply.status, reply.text).toBe(201);
      ids.push(reply.body.id);
    }
    const check = r.routeCheck.parse((await call('GET', `/routes/check?method=GET&url=${encodeURIComponent(`https://${exportHost}/items/9`)}`)).body);
    expect(check).toMatchObject({ rule: { id: ids[0] }, decision: { allow: false, status: 401 } });
    const none = r.routeCheck.parse((await call('GET', `/routes/check?method=GET&url=${encodeURIComponent(`https://${exportHost}/other`)}`)).body);
    expect(none).toMatchObject({ rule: null, reason: 'no-rule-matched', decision: { allow: false } });

    const istio = await call('GET', '/routes/export?format=istio');
    expect(istio.status).toBe(200);
    const documents = parseAllDocuments(istio.body.text).map((document) => document.toJSON());
    expect(documents[0]).toMatchObject({ kind: 'RequestAuthentication', spec: { jwtRules: [{ issuer: server.url, jwksUri: `${server.url}/jwks` }] } });
    const policy = documents.find((document) => document.metadata.annotations?.['postern.dev/api'] === identifier);
    const paths = policy.spec.rules.flatMap((rule: any) => rule.to.map((to: any) => to.operation))
      .filter((operation: any) => operation.hosts?.includes(exportHost)).flatMap((operation: any) => operation.paths);
    // The DPoP rule is left out (a mesh cannot check the binding); every other one is there.
    expect(new Set(paths)).toEqual(new Set(['/items/{*}', '/items/*', '/status']));
    expect(istio.body.warnings.join('\n')).toContain(ids[3]);

    const opa = await call('GET', '/routes/export?format=opa');
    const exported = JSON.parse(opa.body.text);
    const rules = exported.data.postern.rules.filter((rule: any) => rule.host === exportHost);
    // In the order they are tried: exact paths by literals and length, a method-specific rule
    // before an any-method one of the same shape, the prefix last.
    expect(rules.map((rule: any) => rule.id)).toEqual([ids[0], ids[3], ids[2], ids[1]]);
    expect(rules).toHaveLength(4);
    expect(exported.policy).toContain('data.postern.rules');

    expect((await call('GET', '/routes/export?format=yaml')).status).toBe(400);
    expect((await call('GET', '/routes/check?method=GET&url=ftp%3A%2F%2Fx')).status).toBe(400);
  });
});

describe('routes check with a token', () => {
  it('verifies the token and counts the roles and scopes its client holds now', async () => {
    const { db } = tdb.database;
    const checkHost = `${unique('check')}.example`;
    const created = await call('POST', '/routes', { api: identifier, host: checkHost, methods: ['GET'], path: '/orders/{id}', scopesAll: ['orders:read'], roles: [readerRole] });
    expect(created.status).toBe(201);
    const client = await serviceClient(db, [readerRole]);
    const token = await tokenFor(server.url, client, identifier);
    const url = `https://${checkHost}/orders/7`;

    const allowed = await checkRoute(db, { method: 'GET', url, token }, server.url);
    expect(allowed.decision).toEqual({ allow: true });
    expect(allowed.caller).toMatchObject({ clientId: client.id, scopes: ['orders:read'], roles: [readerRole], audiences: [identifier] });

    // A token of another issuer's spelling, a tampered one, and no token at all.
    expect((await checkRoute(db, { method: 'GET', url, token: `${token}x` }, server.url)).decision).toMatchObject({ allow: false, status: 401 });
    expect((await checkRoute(db, { method: 'GET', url, token }, 'https://other.example')).tokenProblem).toMatch(/not a valid/);
    expect((await checkRoute(db, { method: 'GET', url }, server.url)).decision).toMatchObject({ allow: false, status: 401 });

    // The role taken away: the same token falls short at once.
    await unassignRoleFromClient(db, readerRole, client.id, NO_AUDIT);
    const denied = await checkRoute(db, { method: 'GET', url, token }, server.url);
    expect(denied.decision).toMatchObject({ allow: false, status: 403, error: 'insufficient_scope' });
  });
});
