// The admin API's OpenAPI document: valid OpenAPI 3.1 by a real validator, and covering exactly
// the routes the router serves. And the admin API on a listener of its own (ADMIN_PORT).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PREFIX } from '../src/http/admin/openapi.ts';
import { adminRouter } from '../src/http/admin/router.ts';
import { createLogger } from '../src/platform/logger.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { adminCall, adminClient, tokenFor } from './support/admin.ts';
import { freePort } from './support/process.ts';
import { startServer, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

describe('admin API: OpenAPI document', () => {
  it('is served without a token and is valid OpenAPI 3.1', async () => {
    const res = await adminCall(server.url, 'GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    const validator = new Validator();
    const result = await validator.validate(res.body);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(res.body.components.securitySchemes.posternToken.flows.clientCredentials.tokenUrl).toBe(`${server.url}/token`);
  });

  it('documents every route the router serves, and no other', async () => {
    const document = (await adminCall(server.url, 'GET', '/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(document.paths).flatMap(([path, item]) =>
      Object.keys(item).filter((key) => METHODS.includes(key)).map((method) => `${method.toUpperCase()} ${path}`));

    const router = adminRouter({
      db: tdb.database.db, logger: createLogger('silent'), issuer: server.url, maxBodyBytes: 1024,
      verifyAccessToken: async () => undefined, audit: NO_AUDIT,
    });
    const served = router.stack.flatMap((layer) => {
      expect(typeof layer.path).toBe('string');
      const full = String(layer.path);
      expect(full.startsWith(`${ADMIN_PREFIX}/`)).toBe(true);
      const path = full.slice(ADMIN_PREFIX.length).replace(/:(\w+)/g, '{$1}');
      // @koa/router adds HEAD to every GET on its own.
      return layer.methods.filter((method) => method !== 'HEAD').map((method) => `${method} ${path}`);
    });
    expect(served.length).toBeGreaterThan(20);
    expect([...documented].sort()).toEqual([...served].sort());
  });

  it('documents the error statuses of each operation, with one error schema', async () => {
    const document = (await adminCall(server.url, 'GET', '/openapi.json')).body;
    const create = document.paths['/clients'].post;
    expect(Object.keys(create.responses).sort()).toEqual(['201', '400', '401', '403', '409', '413', '415', '500']);
    expect(create.responses['400'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' });
    expect(create.security).toEqual([{ posternToken: ['admin:write'] }]);
    expect(document.paths['/clients'].get.security).toEqual([{ posternToken: ['admin:read'] }]);
  });

  it('describes the redirect URIs a client update replaces', async () => {
    const document = (await adminCall(server.url, 'GET', '/openapi.json')).body;
    const { properties } = document.components.schemas.UpdateClient;
    expect(properties.redirectUris).toMatchObject({ type: 'array', maxItems: 50, items: { type: 'string', maxLength: 2000 } });
    expect(properties.redirectUris.description).toContain('at least one');
    expect(properties.postLogoutRedirectUris.description).toContain('[] removes them');
    expect(document.paths['/clients/{id}'].patch.summary).toContain('redirect URIs');
  });
});

describe('admin API on its own listener (ADMIN_PORT)', () => {
  it('serves /admin/v1 on the admin port only', async () => {
    const adminPort = await freePort();
    const separate = await startServer(tdb.database, { ADMIN_PORT: String(adminPort) });
    expect(separate.config.admin).toEqual({ host: '127.0.0.1', port: adminPort });
    const listener = http.createServer(separate.app.adminKoa.callback());
    await new Promise<void>((resolve) => listener.listen(adminPort, '127.0.0.1', resolve));
    try {
      const adminUrl = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
      const token = await tokenFor(separate.url, await adminClient(tdb.database.db));
      expect((await adminCall(adminUrl, 'GET', '/apis', { token })).status).toBe(200);
      expect((await adminCall(adminUrl, 'GET', '/openapi.json')).status).toBe(200);

      // The public listener knows nothing of /admin; the admin one nothing of the rest.
      const publicAdmin = await adminCall(separate.url, 'GET', '/apis', { token });
      expect(publicAdmin.status).toBe(404);
      expect(publicAdmin.body).toEqual({ error: 'not_found', error_description: 'no such endpoint' });
      expect((await fetch(`${adminUrl}/.well-known/openid-configuration`)).status).toBe(404);
      expect((await fetch(`${adminUrl}/token`, { method: 'POST' })).status).toBe(404);
    } finally {
      listener.closeAllConnections();
      await new Promise((resolve) => listener.close(resolve));
      await separate.close();
    }
  });

  it('refuses an ADMIN_PORT equal to PORT and an invalid one', async () => {
    const { loadConfig } = await import('../src/config.ts');
    expect(loadConfig({ PORT: '4000', ADMIN_PORT: '4000' }).problems).toContainEqual(expect.stringMatching(/^ADMIN_PORT must differ/));
    expect(loadConfig({ ADMIN_PORT: 'abc' }).problems).toContainEqual(expect.stringMatching(/^ADMIN_PORT: /));
    expect(loadConfig({ ADMIN_PORT: '70000' }).problems).toContainEqual(expect.stringMatching(/^ADMIN_PORT: /));
    expect(loadConfig({ ADMIN_PORT: '4001', ADMIN_HOST: '0.0.0.0' }).config.admin).toEqual({ host: '0.0.0.0', port: 4001 });
    expect(loadConfig({}).config.admin).toBeUndefined();
  });
});
