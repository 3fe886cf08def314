// Route policies reach every process before the write returns: two servers on one Postgres
// database, each with its own pool and change feed as separate processes have, and the CLI as a
// third process. Postgres only: the embedded store is single-process by design (its table
// reloads once a second, routes-admin.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { openPostgres, type Database } from '../src/db/database.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createRoute, deleteRoute, updateRoute } from '../src/services/routes.ts';
import { unassignRoleFromClient } from '../src/services/roles.ts';
import { adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { cleanUp, describeRun, postern } from './support/process.ts';
import { startServer, TEST_MASTER_KEY, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let second: Database;
let a: TestServer;
let b: TestServer;
let identifier: string;

describe.skipIf(!onPostgres)('route policies across processes', () => {
  beforeAll(async () => {
    tdb = await createTestDatabase();
    a = await startServer(tdb.database);
    second = openPostgres(tdb.url!, { poolSize: 5 });
    b = await startServer(second, { ISSUER: a.url });
    identifier = (await api(tdb.database.db, { scopes: ['orders:read', 'orders:write'] })).identifier;
  }, 60_000);

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await second?.close();
    await cleanUp();
    await tdb?.drop();
  });

  const matchIn = (server: TestServer, host: string, method: string, path: string) =>
    server.app.routes.match({ host, method, path });

  it('a rule written through one server is in the other\'s table when the write returns', async () => {
    const host = `${unique('orders')}.example`;
    const call = adminClientFor(a.url, await tokenFor(a.url, await adminClient(tdb.database.db)));
    expect(matchIn(b, host, 'GET', '/orders/1')).toEqual({ rule: null, reason: 'no-rules-for-host' });
    const created = await call('POST', '/routes', { api: identifier, host, methods: ['GET'], path: '/orders/{id}', scopesAll: ['orders:read'] });
    expect(created.status).toBe(201);
    // No waiting: the write returned only once B had reloaded.
    expect(matchIn(b, host, 'GET', '/orders/1').rule?.id).toBe(created.body.id);
    expect(matchIn(b, host, 'DELETE', '/orders/1')).toEqual({ rule: null, reason: 'no-rule-matched' });

    await call('PATCH', `/routes/${created.body.id}`, { methods: ['DELETE'] });
    expect(matchIn(b, host, 'DELETE', '/orders/1').rule?.id).toBe(created.body.id);
    expect(matchIn(b, host, 'GET', '/orders/1').rule).toBe(null);

    expect((await call('DELETE', `/routes/${created.body.id}`)).status).toBe(204);
    expect(matchIn(b, host, 'DELETE', '/orders/1')).toEqual({ rule: null, reason: 'no-rules-for-host' });
  });

  it('a write waits for a process still reloading', async () => {
    const host = `${unique('slow')}.example`;
    // B's table takes 600 ms more to apply each route change: the writer's marker waits for it.
    const unsubscribe = b.app.propagation.subscribe({
      onChange: (change) => (change.kind === 'routes' ? new Promise((resolve) => setTimeout(resolve, 600)) : undefined),
      onReset: () => {},
    });
    try {
      const started = Date.now();
      const rule = await createRoute(tdb.database.db, { api: identifier, host, path: '/x' }, NO_AUDIT);
      expect(Date.now() - started).toBeGreaterThanOrEqual(550);
      expect(matchIn(b, host, 'GET', '/x').rule?.id).toBe(rule.id);
      await updateRoute(tdb.database.db, rule.id, { path: '/y' }, NO_AUDIT);
      expect(matchIn(b, host, 'GET', '/y').rule?.id).toBe(rule.id);
      await deleteRoute(tdb.database.db, rule.id, NO_AUDIT);
    } finally {
      unsubscribe();
    }
  });

  it('the CLI writes, checks a token against current roles, and exports; both servers follow', async () => {
    const env = { DATABASE_URL: tdb.url, POSTERN_MASTER_KEY: TEST_MASTER_KEY, ISSUER: a.url };
    const cli = async (args: string[], stdin?: string) => {
      const result = await postern(args, env, 30_000, stdin);
      expect(result.code, describeRun(args, result)).toBe(0);
      return result;
    };
    const host = `${unique('cli')}.example`;
    const reader = (await role(tdb.database.db, [{ api: identifier, scopes: ['orders:read'] }])).name;
    const created = JSON.parse((await cli(['--json', 'routes', 'create', '--api', identifier, '--host', host, '--method', 'GET',
      '--path', '/orders/{id}', '--scope', 'orders:read', '--role', reader])).stdout);
    for (const server of [a, b]) expect(matchIn(server, host, 'GET', '/orders/7').rule?.id).toBe(created.id);

    const client = await serviceClient(tdb.database.db, [reader]);
    const token = await tokenFor(a.url, client, identifier);
    const url = `https://${host}/orders/7`;
    const allowed = await cli(['routes', 'check', '--method', 'GET', '--url', url, '--token', '-'], token);
    expect(allowed.stdout).toMatch(/decision:\s+allow/);
    expect(allowed.stdout).toContain(created.id);
    const wrongMethod = await cli(['routes', 'check', '--method', 'DELETE', '--url', url]);
    expect(wrongMethod.stdout).toMatch(/rule:\s+none \(no-rule-matched\)/);

    await unassignRoleFromClient(tdb.database.db, reader, client.id, NO_AUDIT);
    const denied = await cli(['routes', 'check', '--method', 'GET', '--url', url, '--token', token]);
    expect(denied.stdout).toMatch(/decision:\s+deny \(403 insufficient_scope\): the token lacks the scope orders:read/);

    const istio = await cli(['routes', 'export', '--format', 'istio', '--namespace', 'shop']);
    const documents = parseAllDocuments(istio.stdout).map((document) => document.toJSON());
    expect(documents.every((document) => document.metadata.namespace === 'shop')).toBe(true);
    const operations = documents.flatMap((document) => document.spec.rules ?? []).flatMap((rule: any) => rule.to.map((to: any) => to.operation));
    expect(operations).toContainEqual({ hosts: [host], methods: ['GET'], paths: ['/orders/{*}'] });

    await cli(['routes', 'delete', created.id]);
    for (const server of [a, b]) expect(matchIn(server, host, 'GET', '/orders/7').rule).toBe(null);
  }, 120_000);
});
