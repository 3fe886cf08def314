// The admin API's endpoints over real HTTP, with an admin token from Postern's own token endpoint.
// Every success body is checked against the zod schema the OpenAPI document is generated from.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as s from '../src/http/admin/schemas.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { serviceClient, unique } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let call: ReturnType<typeof adminClientFor>;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const admin = await adminClient(tdb.database.db);
  call = adminClientFor(server.url, await tokenFor(server.url, admin));
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('admin API: APIs', () => {
  it('creates, lists, shows (by id, identifier or name), updates and deletes an API', async () => {
    const identifier = `https://${unique('orders')}.internal`;
    const created = await call('POST', '/apis', {
      identifier, name: 'orders', scopes: ['orders:read'], accessTokenTtl: 120, scopeDescriptions: { 'orders:read': 'See your orders' },
    });
    expect(created.status).toBe(201);
    const api = s.apiView.parse(created.body);
    expect(api).toMatchObject({
      identifier, name: 'orders', scopes: ['orders:read'], scopeDescriptions: { 'orders:read': 'See your orders' }, tokenFormat: 'jwt', accessTokenTtl: 120,
    });

    const listed = await call('GET', '/apis');
    expect(listed.status).toBe(200);
    const identifiers = s.list(s.apiView).parse(listed.body).items.map((item) => item.identifier);
    expect(identifiers).toEqual(expect.arrayContaining([identifier, 'urn:postern']));

    for (const ref of [api.id, identifier, 'orders']) {
      const shown = await call('GET', `/apis/${encodeURIComponent(ref)}`);
      expect(shown.status).toBe(200);
      expect(shown.body.id).toBe(api.id);
    }

    const updated = await call('PATCH', `/apis/${api.id}`, { addScopes: ['orders:write'], signingAlg: 'EdDSA', tokenFormat: 'opaque' });
    expect(updated.status).toBe(200);
    expect(s.apiView.parse(updated.body)).toMatchObject({ scopes: ['orders:read', 'orders:write'], signingAlg: 'EdDSA', tokenFormat: 'opaque' });
    // A description names a scope of the API; null removes one.
    const undefinedScope = await call('PATCH', `/apis/${api.id}`, { scopeDescriptions: { 'orders:delete': 'Delete orders' } });
    expect(undefinedScope.status).toBe(400);
    expect(undefinedScope.body).toMatchObject({ error: 'invalid_input', fields: ['scopeDescriptions'] });
    const described = await call('PATCH', `/apis/${api.id}`, { scopeDescriptions: { 'orders:read': null, 'orders:write': 'Place orders' } });
    expect(described.body.scopeDescriptions).toEqual({ 'orders:write': 'Place orders' });
    const removed = await call('PATCH', `/apis/${api.id}`, { removeScopes: ['orders:read'] });
    expect(removed.body.scopes).toEqual(['orders:write']);

    const deleted = await call('DELETE', `/apis/${api.id}`);
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expect((await call('GET', `/apis/${api.id}`)).status).toBe(404);
  });

  it('refuses to delete the built-in API or to make its tokens opaque (403)', async () => {
    const del = await call('DELETE', '/apis/urn:postern');
    expect(del.status).toBe(403);
    expect(del.body.error).toBe('forbidden');
    const opaque = await call('PATCH', '/apis/urn:postern', { tokenFormat: 'opaque' });
    expect(opaque.status).toBe(403);
  });
});

describe('admin API: clients', () => {
  it('creates a client and returns its secret once; the secret gets tokens', async () => {
    const name = unique('billing');
    const created = await call('POST', '/clients', { name });
    expect(created.status).toBe(201);
    const { client, clientSecret } = s.clientWithSecret.parse(created.body);
    expect(client).toMatchObject({ name, enabled: true, grantTypes: ['client_credentials'] });
    expect(clientSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const shown = await call('GET', `/clients/${client.clientId}`);
    expect(s.clientView.parse(shown.body).clientId).toBe(client.clientId);
    expect(shown.text).not.toContain(clientSecret);
  });

  it('pages through clients with a cursor and filters by name prefix, enabled and role', async () => {
    const prefix = unique('page');
    const role = await call('POST', '/roles', { name: `${prefix}-role` });
    for (const n of [1, 2, 3, 4, 5]) {
      const res = await call('POST', '/clients', { name: `${prefix}-${n}`, ...(n % 2 ? { roles: [`${prefix}-role`] } : {}) });
      expect(res.status).toBe(201);
    }
    await call('PATCH', `/clients/${prefix}-5`, { enabled: false });

    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `namePrefix=${prefix}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const res = await call('GET', `/clients?${query}`);
      expect(res.status).toBe(200);
      const page = s.clientPage.parse(res.body);
      expect(page.items.length).toBeLessThanOrEqual(2);
      names.push(...page.items.map((c) => c.name));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(names).toEqual([1, 2, 3, 4, 5].map((n) => `${prefix}-${n}`));

    const disabled = await call('GET', `/clients?namePrefix=${prefix}&enabled=false`);
    expect(disabled.body.items.map((c: { name: string }) => c.name)).toEqual([`${prefix}-5`]);
    const byRole = await call('GET', `/clients?role=${role.body.id}&enabled=true`);
    expect(byRole.body.items.map((c: { name: string }) => c.name)).toEqual([`${prefix}-1`, `${prefix}-3`]);
    const unknownRole = await call('GET', '/clients?role=nope');
    expect(unknownRole.status).toBe(400);
    expect(unknownRole.body.fields).toEqual(['role']);
    const badCursor = await call('GET', '/clients?cursor=***');
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.fields).toEqual(['cursor']);
  });

  it('renames, disables and enables a client; a disabled client gets no token', async () => {
    const svc = await serviceClient(tdb.database.db);
    const renamed = await call('PATCH', `/clients/${svc.id}`, { name: `${svc.name}-renamed` });
    expect(s.clientView.parse(renamed.body).name).toBe(`${svc.name}-renamed`);
    const disabled = await call('PATCH', `/clients/${svc.name}-renamed`, { enabled: false });
    expect(disabled.body.enabled).toBe(false);
    const token = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, svc);
    expect(token.status).toBe(401);
    expect((await call('PATCH', `/clients/${svc.id}`, { enabled: true })).body.enabled).toBe(true);
  });

  it('replaces a sign-in app\'s redirect URIs under the rules of its creation, and names them in the audit log', async () => {
    const name = unique('web');
    const created = await call('POST', '/clients', {
      name, grantTypes: ['authorization_code'], redirectUris: ['https://app.example/cb'], postLogoutRedirectUris: ['https://app.example/'],
    });
    const id = s.clientWithSecret.parse(created.body).client.clientId;
    const replaced = await call('PATCH', `/clients/${id}`, { redirectUris: ['https://app.example/callback', 'http://localhost:5173/cb'] });
    expect(replaced.status).toBe(200);
    expect(s.clientView.parse(replaced.body)).toMatchObject({
      redirectUris: ['https://app.example/callback', 'http://localhost:5173/cb'], postLogoutRedirectUris: ['https://app.example/'],
    });
    const cleared = await call('PATCH', `/clients/${id}`, { postLogoutRedirectUris: [] });
    expect(s.clientView.parse(cleared.body).postLogoutRedirectUris).toEqual([]);
    const service = await serviceClient(tdb.database.db);
    for (const [ref, body, field, message] of [
      [id, { redirectUris: ['http://app.example/cb'] }, 'redirectUris', 'must use https'],
      [id, { redirectUris: ['https://app.example/cb#x'] }, 'redirectUris', 'without a fragment'],
      [id, { redirectUris: [] }, 'redirectUris', 'at least one redirect URI'],
      // A private-use scheme is for public native apps only.
      [id, { redirectUris: ['com.example.app:/cb'] }, 'redirectUris', 'private-use scheme'],
      [id, { postLogoutRedirectUris: ['ftp://app.example/'] }, 'postLogoutRedirectUris', 'must use https'],
      [service.id, { redirectUris: ['https://app.example/cb'] }, 'redirectUris', 'only to authorization_code clients'],
      [service.id, { postLogoutRedirectUris: [] }, 'postLogoutRedirectUris', 'only to authorization_code clients'],
      ['postern-console-webapp', { redirectUris: ['https://evil.example/cb'] }, 'redirectUris', 'where the console is served'],
    ] as const) {
      const refused = await call('PATCH', `/clients/${ref}`, body);
      expect(refused.status, message).toBe(400);
      expect(refused.body).toMatchObject({ error: 'invalid_input', fields: [field] });
      expect(refused.body.message).toContain(message);
    }
    expect(s.clientView.parse((await call('GET', `/clients/${id}`)).body).redirectUris).toEqual(['https://app.example/callback', 'http://localhost:5173/cb']);
    const spa = await call('POST', '/clients', { name: unique('spa'), grantTypes: ['authorization_code'], public: true, redirectUris: ['http://localhost:5173/cb'] });
    const native = await call('PATCH', `/clients/${spa.body.client.clientId}`, { redirectUris: ['com.example.app:/callback'] });
    expect(native.status).toBe(200);
    expect(native.body.redirectUris).toEqual(['com.example.app:/callback']);
    await server.app.audit.flush();
    const events = await tdb.database.db.selectFrom('audit_events').select('details')
      .where('type', '=', 'client.updated').where('target_id', '=', id).orderBy('id').execute();
    expect(events.map((event) => (event.details as { fields: string[] }).fields)).toEqual([['redirectUris'], ['postLogoutRedirectUris']]);
  });

  it('rotates a secret, keeping the old one for the overlap', async () => {
    const svc = await serviceClient(tdb.database.db);
    const rotated = await call('POST', `/clients/${svc.id}/rotate-secret`, { keepOldForSeconds: 3600 });
    expect(rotated.status).toBe(200);
    const result = s.rotatedSecret.parse(rotated.body);
    expect(result.clientSecret).not.toBe(svc.secret);
    expect(Date.parse(result.oldSecretsExpireAt)).toBeGreaterThan(Date.now() + 3500_000);
    expect(result.client.secrets).toHaveLength(2);
    // No body: the old secrets stop at once.
    const now = await call('POST', `/clients/${svc.id}/rotate-secret`);
    expect(now.status).toBe(200);
    expect(s.rotatedSecret.parse(now.body).client.secrets).toHaveLength(1);
  });

  it('deletes a client', async () => {
    const svc = await serviceClient(tdb.database.db);
    expect((await call('DELETE', `/clients/${svc.id}`)).status).toBe(204);
    expect((await call('GET', `/clients/${svc.id}`)).status).toBe(404);
    expect((await call('DELETE', `/clients/${svc.id}`)).status).toBe(404);
  });
});

describe('admin API: roles and keys', () => {
  it('creates, shows, renames, grants, ungrants, assigns, unassigns and deletes a role', async () => {
    const api = s.apiView.parse((await call('POST', '/apis', {
      identifier: `https://${unique('ledger')}.internal`, scopes: ['read', 'write'],
    })).body);
    const name = unique('clerk');
    const created = await call('POST', '/roles', { name, description: 'books', grants: [{ api: api.identifier, scopes: ['read'] }] });
    expect(created.status).toBe(201);
    const role = s.roleView.parse(created.body);
    expect(role.grants).toEqual([{ api: api.identifier, scopes: ['read'] }]);
    expect(s.list(s.roleView).parse((await call('GET', '/roles')).body).items.map((r) => r.name)).toContain(name);
    expect(s.roleView.parse((await call('GET', `/roles/${name}`)).body).id).toBe(role.id);

    const renamed = await call('PATCH', `/roles/${role.id}`, { name: `${name}-x`, description: null });
    expect(renamed.body).toMatchObject({ name: `${name}-x`, description: null });

    const granted = await call('POST', `/roles/${role.id}/grants`, { api: api.id, scopes: ['write'] });
    expect(s.roleView.parse(granted.body).grants).toEqual([{ api: api.identifier, scopes: ['read', 'write'] }]);
    const ungranted = await call('DELETE', `/roles/${role.id}/grants`, { api: api.name, scopes: ['read'] });
    expect(ungranted.body.grants).toEqual([{ api: api.identifier, scopes: ['write'] }]);

    const svc = await serviceClient(tdb.database.db);
    const assigned = await call('PUT', `/roles/${role.id}/clients/${svc.name}`);
    expect(assigned.status).toBe(200);
    expect(s.roleView.parse(assigned.body).clients).toEqual([svc.id]);
    const token = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, svc);
    expect(token.body.scope).toBe('write');
    const unassigned = await call('DELETE', `/roles/${role.id}/clients/${svc.id}`);
    expect(unassigned.body.clients).toEqual([]);
    expect((await call('DELETE', `/roles/${role.id}/clients/${svc.id}`)).status).toBe(404);

    expect((await call('DELETE', `/roles/${role.id}`)).status).toBe(204);
    expect((await call('GET', `/roles/${role.id}`)).status).toBe(404);
  });

  it('refuses a grant of a scope the API does not define, naming the field', async () => {
    const res = await call('POST', '/roles', { name: unique('r'), grants: [{ api: 'urn:postern', scopes: ['nope'] }] });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_input', fields: ['grant'] });
  });

  it('lists signing keys without private material', async () => {
    const res = await call('GET', '/keys');
    expect(res.status).toBe(200);
    const keys = s.list(s.keyView).parse(res.body).items;
    expect(keys.map((k) => k.alg).sort()).toEqual(['ES256', 'EdDSA', 'RS256']);
    for (const key of keys) expect(key.state).toBe('active');
    expect(res.text).not.toMatch(/"(d|p|q|dp|dq|qi)"/);
  });
});
