// Self-registration (RFC 7591) with initial access tokens and RFC 7592 management, over real HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactKey } from '../src/domain/artifact-hashing.ts';
import { sha256Hex } from '../src/domain/crypto.ts';
import { openKeyMaterial } from '../src/services/keys.ts';
import { deleteClient } from '../src/services/clients.ts';
import { createRegistrationToken } from '../src/services/registration.ts';
import * as schemas from '../src/http/admin/schemas.ts';
import { adminCall, adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, unique } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;
let ordersApi: string;
let readerRole: string;
/** Where the server stores a registration access token: under its keyed hash. */
let storedId: (registrationAccessToken: string) => string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const created = await api(tdb.database.db, { scopes: ['orders:read', 'orders:write'] });
  ordersApi = created.identifier;
  readerRole = (await role(tdb.database.db, [{ api: ordersApi, scopes: ['orders:read'] }])).name;
  const { material } = await openKeyMaterial(tdb.database.db, [server.config.masterKey!]);
  const key = ArtifactKey.fromSecret(material!.artifactKey);
  storedId = (value) => key.storedId('RegistrationAccessToken', value);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

async function register(body: unknown, token?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${server.url}/reg`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, body: await res.json().catch(() => undefined) as any };
}

async function manage(method: string, uri: string, token: string, body?: unknown) {
  const res = await fetch(uri, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const token = async (options: { maxUses?: number; ttlSeconds?: number; roles?: string[] } = {}) =>
  (await createRegistrationToken(tdb.database.db, { roles: [readerRole], ...options }, NO_AUDIT)).token;

describe('registration (RFC 7591)', () => {
  it('refuses a registration without an initial access token, or with an unknown one (401)', async () => {
    const none = await register({ client_name: unique('anon') });
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('invalid_token');
    const wrong = await register({ client_name: unique('anon') }, 'not-a-token');
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_token');
  });

  it('registers a service that gets exactly the scopes of the token\'s roles, secret stored hashed', async () => {
    const name = unique('self');
    const res = await register({ client_name: name, grant_types: ['client_credentials'] }, await token());
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      client_name: name, grant_types: ['client_credentials'], response_types: [], token_endpoint_auth_method: 'client_secret_basic',
    });
    expect(res.body.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.body.registration_access_token).toBeTruthy();
    expect(res.body.registration_client_uri).toBe(`${server.url}/reg/${res.body.client_id}`);

    const credentials = { id: res.body.client_id, secret: res.body.client_secret };
    const ok = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, credentials);
    expect(ok.status).toBe(200);
    expect(ok.body.scope).toBe('orders:read');
    const beyond = await postForm(`${server.url}/token`, { grant_type: 'client_credentials', scope: 'orders:write' }, credentials);
    expect(beyond.status).toBe(400);
    expect(beyond.body.error).toBe('invalid_scope');

    const db = tdb.database.db;
    const row = await db.selectFrom('clients').selectAll().where('client_id', '=', credentials.id).executeTakeFirstOrThrow();
    expect(JSON.stringify(row.metadata)).not.toContain(credentials.secret);
    const secrets = await db.selectFrom('client_secrets').select('secret_hash').where('client_id', '=', credentials.id).execute();
    expect(secrets).toEqual([{ secret_hash: sha256Hex(credentials.secret) }]);
    // The registration access token is stored under its keyed hash only.
    const payloads = await db.selectFrom('oidc_payloads').select(['id', 'payload']).where('model', '=', 'RegistrationAccessToken').execute();
    expect(JSON.stringify(payloads)).not.toContain(res.body.registration_access_token);
    expect(payloads.map((p) => p.id)).toContain(storedId(res.body.registration_access_token));
    expect(payloads.map((p) => p.id)).not.toContain(sha256Hex(res.body.registration_access_token));
  });

  it('refuses an exhausted token and an expired one (401 invalid_token)', async () => {
    const once = await token({ maxUses: 1 });
    expect((await register({ client_name: unique('a') }, once)).status).toBe(201);
    const again = await register({ client_name: unique('b') }, once);
    expect(again.status).toBe(401);
    expect(again.body.error).toBe('invalid_token');

    const { token: expired } = await createRegistrationToken(
      tdb.database.db, { roles: [readerRole], ttlSeconds: 60 }, NO_AUDIT, new Date(Date.now() - 120_000),
    );
    const late = await register({ client_name: unique('c') }, expired);
    expect(late.status).toBe(401);
    expect(late.body.error).toBe('invalid_token');
  });

  it('lets exactly max-uses registrations through when they race', async () => {
    const twice = await token({ maxUses: 2 });
    const results = await Promise.all([1, 2, 3, 4].map(() => register({ client_name: unique('race') }, twice)));
    expect(results.map((r) => r.status).sort()).toEqual([201, 201, 401, 401]);
  });

  it('refuses other kinds of clients and bad metadata clearly (400 invalid_client_metadata)', async () => {
    const iat = await token({ maxUses: 10 });
    const code = await register({ client_name: unique('web'), grant_types: ['authorization_code'], redirect_uris: ['https://x.example/cb'] }, iat);
    expect(code.status).toBe(400);
    expect(code.body.error).toBe('invalid_client_metadata');
    const badName = await register({ client_name: 'has spaces' }, iat);
    expect(badName.status).toBe(400);
    expect(badName.body).toMatchObject({ error: 'invalid_client_metadata' });
    const method = await register({ client_name: unique('m'), token_endpoint_auth_method: 'private_key_jwt' }, iat);
    expect(method.status).toBe(400);
    const name = unique('dup');
    expect((await register({ client_name: name }, iat)).status).toBe(201);
    const dup = await register({ client_name: name }, iat);
    expect(dup.status).toBe(400);
    expect(dup.body.error_description).toContain('already exists');
    const notJson = await fetch(`${server.url}/reg`, { method: 'POST', headers: { authorization: `Bearer ${iat}`, 'content-type': 'application/json' }, body: '{' });
    expect(notJson.status).toBe(400);
  });
});

describe('registration management (RFC 7592)', () => {
  it('reads, updates and deletes its own registration with its registration access token', async () => {
    const name = unique('managed');
    const created = (await register({ client_name: name }, await token())).body;
    const uri = created.registration_client_uri as string;
    let rat = created.registration_access_token as string;

    const read = await manage('GET', uri, rat);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ client_id: created.client_id, client_name: name });
    expect(read.body.client_secret).toBeUndefined();

    const renamed = `${name}-v2`;
    const updated = await manage('PUT', uri, rat, {
      client_id: created.client_id, client_name: renamed, grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_post',
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ client_name: renamed, token_endpoint_auth_method: 'client_secret_post' });
    expect(updated.body.client_secret).toBeUndefined();
    // The token rotates on update; the old one is gone.
    expect(updated.body.registration_access_token).not.toBe(rat);
    expect((await manage('GET', uri, rat)).status).toBe(401);
    rat = updated.body.registration_access_token;

    // The secret it got at registration still works, now in the body.
    const tokenRes = await postForm(`${server.url}/token`, {
      grant_type: 'client_credentials', client_id: created.client_id, client_secret: created.client_secret,
    });
    expect(tokenRes.status).toBe(200);

    const widen = await manage('PUT', uri, rat, { client_id: created.client_id, grant_types: ['authorization_code'] });
    expect(widen.status).toBe(400);
    expect(widen.body.error).toBe('invalid_client_metadata');

    const other = (await register({ client_name: unique('other') }, await token())).body;
    expect((await manage('GET', uri, other.registration_access_token)).status).toBe(401);

    expect((await manage('DELETE', uri, rat)).status).toBe(204);
    const gone = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, { id: created.client_id, secret: created.client_secret });
    expect(gone.status).toBe(401);
    expect((await manage('GET', uri, rat)).status).toBe(401);
  });
});

describe('a registered client deleted by an operator', () => {
  it('takes its registration access token with it', async () => {
    const created = (await register({ client_name: unique('ops-deleted') }, await token())).body;
    const stored = () => tdb.database.db.selectFrom('oidc_payloads').select('id')
      .where('id', '=', storedId(created.registration_access_token)).execute();
    expect(await stored()).toHaveLength(1);
    await deleteClient(tdb.database.db, created.client_id, NO_AUDIT);
    // Gone at once, not only when it is next presented.
    expect(await stored()).toEqual([]);
    expect((await manage('GET', created.registration_client_uri, created.registration_access_token)).status).toBe(401);
  });
});

describe('admin API: registration tokens', () => {
  it('creates (value shown once), lists, shows and revokes a token; a revoked token registers nothing', async () => {
    const call = adminClientFor(server.url, await tokenFor(server.url, await adminClient(tdb.database.db)));
    const created = await call('POST', '/registration-tokens', { roles: [readerRole], maxUses: 2, ttlSeconds: 600, description: 'ci' });
    expect(created.status).toBe(201);
    const { registrationToken, token: value } = schemas.registrationTokenWithValue.parse(created.body);
    expect(registrationToken).toMatchObject({ roles: [readerRole], maxUses: 2, uses: 0, state: 'active', description: 'ci', revokedAt: null });
    expect(Date.parse(registrationToken.expiresAt) - Date.now()).toBeGreaterThan(590_000);

    const listed = schemas.list(schemas.registrationTokenView).parse((await call('GET', '/registration-tokens')).body);
    expect(listed.items.map((t) => t.id)).toContain(registrationToken.id);
    expect(JSON.stringify(listed)).not.toContain(value);

    expect((await register({ client_name: unique('via-admin') }, value)).status).toBe(201);
    const shown = schemas.registrationTokenView.parse((await call('GET', `/registration-tokens/${registrationToken.id}`)).body);
    expect(shown.uses).toBe(1);

    const revoked = await call('POST', `/registration-tokens/${registrationToken.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(schemas.registrationTokenView.parse(revoked.body)).toMatchObject({ state: 'revoked' });
    expect((await register({ client_name: unique('late') }, value)).status).toBe(401);
  });

  it('answers errors in the admin format: 400, 404, 401, 403', async () => {
    const call = adminClientFor(server.url, await tokenFor(server.url, await adminClient(tdb.database.db)));
    const bad = await call('POST', '/registration-tokens', { maxUses: 0 });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'invalid_input', fields: ['body.maxUses'] });
    const short = await call('POST', '/registration-tokens', { ttlSeconds: 5 });
    expect(short.body.fields).toEqual(['body.ttlSeconds']);
    const extra = await call('POST', '/registration-tokens', { token: 'mine' });
    expect(extra.body.fields).toEqual(['body.token']);
    expect((await call('POST', '/registration-tokens', { roles: ['no-such-role'] })).status).toBe(404);
    expect((await call('GET', '/registration-tokens/rt_nope')).status).toBe(404);
    expect((await call('POST', '/registration-tokens/rt_nope/revoke')).status).toBe(404);
    expect((await adminCall(server.url, 'GET', '/registration-tokens')).status).toBe(401);
    const reader = await tokenFor(server.url, await adminClient(tdb.database.db, ['admin:read']));
    expect((await adminCall(server.url, 'GET', '/registration-tokens', { token: reader })).status).toBe(200);
    const denied = await adminCall(server.url, 'POST', '/registration-tokens', { token: reader, body: {} });
    expect(denied.status).toBe(403);
    expect(denied.body.error).toBe('insufficient_scope');
  });
});
