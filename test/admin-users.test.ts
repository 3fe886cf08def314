// The admin API's people endpoints over real HTTP: create (with the password policy), list, show,
// update, disable (ending sessions), set password, revoke sessions, roles, delete; and the
// read/write split.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as s from '../src/http/admin/schemas.ts';
import * as u from '../src/http/admin/user-schemas.ts';
import { adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { startServer, type TestServer } from './support/server.ts';
import { exchangeCode, introspect, PASSWORD, refresh, signIn, signInWorld } from './support/sign-in.ts';

let tdb: TestDatabase;
let server: TestServer;
let call: ReturnType<typeof adminClientFor>;
let readOnly: ReturnType<typeof adminClientFor>;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  call = adminClientFor(server.url, await tokenFor(server.url, await adminClient(tdb.database.db)));
  readOnly = adminClientFor(server.url, await tokenFor(server.url, await adminClient(tdb.database.db, ['admin:read'])));
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('admin API: people', () => {
  it('creates, lists, shows, updates and deletes a person', async () => {
    const created = await call('POST', '/users', { username: 'carol', password: 'quiet-river-stone-88', email: 'carol@example.com' });
    expect(created.status).toBe(201);
    const user = u.userView.parse(created.body);
    expect(user).toMatchObject({ username: 'carol', email: 'carol@example.com', emailVerified: false, enabled: true, roles: [] });
    expect(created.text).not.toContain('quiet-river-stone-88');

    expect(u.userView.parse((await call('GET', '/users/carol')).body).id).toBe(user.id);
    expect(s.list(u.userView).parse((await call('GET', '/users')).body).items.map((x) => x.username)).toContain('carol');

    const updated = await call('PATCH', `/users/${user.id}`, { name: 'Carol C', email: 'carol@corp.example' });
    expect(updated.body).toMatchObject({ name: 'Carol C', email: 'carol@corp.example', emailVerified: false });
    expect((await call('PATCH', '/users/carol', { emailVerified: true })).body.emailVerified).toBe(true);

    expect((await call('PUT', '/users/carol/password', { password: 'another-quiet-river-99' })).status).toBe(200);
    expect((await call('DELETE', '/users/carol')).status).toBe(204);
    expect((await call('GET', '/users/carol')).status).toBe(404);
  });

  it('refuses weak passwords, duplicates and unknown fields with the offending field named', async () => {
    const weak = await call('POST', '/users', { username: 'dave', password: 'short' });
    expect(weak.status).toBe(400);
    expect(weak.body.fields).toEqual(['password']);
    const common = await call('POST', '/users', { username: 'dave', password: 'password2024!' });
    expect(common.status).toBe(400);
    expect(common.body.message).toContain('commonly used');
    await call('POST', '/users', { username: 'erin', password: 'quiet-river-stone-88' });
    expect((await call('POST', '/users', { username: 'ERIN', password: 'quiet-river-stone-88' })).status).toBe(409);
    expect((await call('POST', '/users', { username: 'fay', password: 'quiet-river-stone-88', admin: true })).status).toBe(400);
    expect((await call('PUT', '/users/erin/password', { password: 'erin-erin-erin-erin' })).status).toBe(400);
  });

  it('assigns roles to people, and disabling or revoking sessions ends their tokens', async () => {
    const world = await signInWorld(tdb.database.db);
    const flow = await signIn(server.url, world);
    const tokens = (await exchangeCode(server.url, world, flow.code, flow.verifier, { resource: world.api.identifier })).body;

    const extra = await call('POST', '/roles', { name: 'extra-role' });
    expect(extra.status).toBe(201);
    const assigned = await call('PUT', `/roles/extra-role/users/${world.username}`);
    expect(assigned.status).toBe(200);
    expect(assigned.body.users).toContain(world.username);
    expect((await call('DELETE', `/roles/extra-role/users/${world.username}`)).status).toBe(200);
    expect((await call('DELETE', `/roles/extra-role/users/${world.username}`)).status).toBe(404);

    const revoked = await call('POST', `/users/${world.username}/revoke-sessions`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedGrants).toBe(1);
    expect((await introspect(server.url, world, tokens.access_token)).body.active).toBe(false);
    expect((await refresh(server.url, world, tokens.refresh_token)).body.error).toBe('invalid_grant');

    // Disabled: cannot sign in (the same generic message), and comes back when enabled.
    expect((await call('PATCH', `/users/${world.username}`, { enabled: false })).body.enabled).toBe(false);
    await expect(signIn(server.url, world)).rejects.toThrow();
    expect((await call('PATCH', `/users/${world.username}`, { enabled: true })).body.enabled).toBe(true);
    expect((await signIn(server.url, world)).code).toBeTruthy();
    expect(PASSWORD).toBeTruthy();
  });

  it('lets a read-only token read people but not change them', async () => {
    expect((await readOnly('GET', '/users')).status).toBe(200);
    const denied = await readOnly('POST', '/users', { username: 'gus', password: 'quiet-river-stone-88' });
    expect(denied.status).toBe(403);
    expect((await readOnly('POST', '/users/erin/revoke-sessions')).status).toBe(403);
  });
});
