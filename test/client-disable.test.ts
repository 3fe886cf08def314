// Disabling a client revokes what it holds: its JWT and opaque access tokens, its refresh tokens
// and the tokens of the people signed in to it stay dead when it is enabled again, whether it was
// disabled through the services, the admin API or the CLI. Deleting a client (by an operator, or
// by itself under RFC 7592) leaves nothing usable either.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_SCOPES, POSTERN_API } from '../src/services/admin.ts';
import { createClient, setClientEnabled } from '../src/services/clients.ts';
import { createRegistrationToken } from '../src/services/registration.ts';
import { createUser } from '../src/services/users.ts';
import { adminCall, tokenFor } from './support/admin.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { describeRun, postern } from './support/process.ts';
import { postForm, startServer, TEST_MASTER_KEY, type TestServer } from './support/server.ts';
import { CALLBACK, exchangeCode, PASSWORD, refresh, signIn, type World } from './support/sign-in.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;
let orders: Awaited<ReturnType<typeof api>>;
let ledger: Awaited<ReturnType<typeof api>>;
let both: Awaited<ReturnType<typeof role>>;
let people: Awaited<ReturnType<typeof role>>;
let auditor: { id: string; secret: string };
let adminToken: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const db = tdb.database.db;
  orders = await api(db, { scopes: ['orders:read', 'orders:write'] });
  ledger = await api(db, { scopes: ['ledger:read'], tokenFormat: 'opaque' });
  both = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }, { api: ledger.identifier, scopes: ['ledger:read'] }]);
  people = await role(db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
  auditor = await serviceClient(db, [(await role(db, [{ api: POSTERN_API, scopes: ['introspect'] }])).name]);
  adminToken = await tokenFor(server.url, await serviceClient(db, [(await role(db, [{ api: POSTERN_API, scopes: ADMIN_SCOPES }])).name]));
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

/**
 * A web app that also calls APIs on its own (client credentials), and a person signed in to it:
 * a JWT and an opaque token of its own, the person's access token and refresh token.
 */
async function appWithTokens() {
  const db = tdb.database.db;
  const created = await createClient(db, {
    name: unique('webapp'), grantTypes: ['authorization_code', 'client_credentials'], redirectUris: [CALLBACK], roles: [both.name],
  }, NO_AUDIT);
  const client = { id: created.client.clientId, secret: created.clientSecret!, name: created.client.name };
  const username = unique('erin');
  await createUser(db, { username, password: PASSWORD, roles: [people.name] }, NO_AUDIT);
  const world = { api: orders, client, username } as unknown as World;
  const flow = await signIn(server.url, world);
  const exchanged = await exchangeCode(server.url, world, flow.code, flow.verifier, { resource: orders.identifier });
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  const tokens = {
    jwt: await tokenFor(server.url, client, orders.identifier),
    opaque: await tokenFor(server.url, client, ledger.identifier),
    person: exchanged.body.access_token as string,
    refreshToken: exchanged.body.refresh_token as string,
  };
  expect(tokens.refreshToken).toBeTypeOf('string');
  expect(tokens.opaque.split('.')).toHaveLength(1);
  return { client, world, tokens };
}

type App = Awaited<ReturnType<typeof appWithTokens>>;

/** A service registered by itself (RFC 7591) with the roles of an initial access token. */
async function register() {
  const iat = (await createRegistrationToken(tdb.database.db, { roles: [both.name] }, NO_AUDIT)).token;
  const registered = await fetch(`${server.url}/reg`, {
    method: 'POST',
    headers: { authorization: `Bearer ${iat}`, 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: unique('self') }),
  });
  expect(registered.status).toBe(201);
  return (await registered.json()) as { client_id: string; client_secret: string; registration_client_uri: string; registration_access_token: string };
}

const introspect = async (token: string) => (await postForm(`${server.url}/token/introspection`, { token }, auditor)).body;

async function expectAllActive({ tokens }: App) {
  for (const token of [tokens.jwt, tokens.opaque, tokens.person]) expect((await introspect(token)).active).toBe(true);
}

/** Every token is inactive, the refresh token refused, while the client itself works again. */
async function expectAllDead({ client, world, tokens }: App) {
  for (const [kind, token] of Object.entries({ jwt: tokens.jwt, opaque: tokens.opaque, person: tokens.person })) {
    expect(await introspect(token), kind).toEqual({ active: false });
  }
  expect(await introspect(tokens.refreshToken), 'refresh').toEqual({ active: false });
  const refreshed = await refresh(server.url, world, tokens.refreshToken, { resource: orders.identifier });
  expect(refreshed.status).toBe(400);
  expect(refreshed.body).toMatchObject({ error: 'invalid_grant' });
  // Enabled: it gets new tokens (from the next second on: iat has one-second resolution).
  await new Promise((resolve) => setTimeout(resolve, 1050 - (Date.now() % 1000)));
  const fresh = await tokenFor(server.url, client, orders.identifier);
  expect((await introspect(fresh)).active).toBe(true);
}

describe('a client disabled and enabled again', () => {
  it('through the services: none of its earlier tokens comes back', async () => {
    const app = await appWithTokens();
    await expectAllActive(app);
    await setClientEnabled(tdb.database.db, app.client.id, false, NO_AUDIT);
    await setClientEnabled(tdb.database.db, app.client.id, true, NO_AUDIT);
    await expectAllDead(app);
  });

  it('through the admin API: none of its earlier tokens comes back, and the audit says what was revoked', async () => {
    const app = await appWithTokens();
    await expectAllActive(app);
    const disabled = await adminCall(server.url, 'PATCH', `/clients/${app.client.id}`, { token: adminToken, body: { enabled: false } });
    expect(disabled.status).toBe(200);
    expect(disabled.body.enabled).toBe(false);
    expect((await adminCall(server.url, 'PATCH', `/clients/${app.client.id}`, { token: adminToken, body: { enabled: true } })).status).toBe(200);
    await expectAllDead(app);
    await server.app.audit.flush();
    const events = await tdb.database.db.selectFrom('audit_events').select('details')
      .where('type', '=', 'client.updated').where('target_id', '=', app.client.id).orderBy('id').execute();
    expect(events.map((event) => event.details)).toEqual([
      expect.objectContaining({ enabled: false, deletedArtifacts: expect.any(Number), revokedBefore: expect.any(String) }),
      expect.not.objectContaining({ deletedArtifacts: expect.anything() }),
    ]);
    expect((events[0]!.details as { deletedArtifacts: number }).deletedArtifacts).toBeGreaterThanOrEqual(3);
  });

  it.skipIf(!onPostgres)('through the CLI: none of its earlier tokens comes back', async () => {
    const app = await appWithTokens();
    await expectAllActive(app);
    const env = { DATABASE_URL: tdb.url, POSTERN_MASTER_KEY: TEST_MASTER_KEY, LOG_LEVEL: 'warn' };
    for (const command of ['disable', 'enable']) {
      const args = ['clients', command, app.client.name];
      const result = await postern(args, env);
      expect(result.code, describeRun(args, result)).toBe(0);
    }
    await expectAllDead(app);
  });
});

describe('a self-registered client disabled and enabled again', () => {
  it('loses its registration access token with its other tokens', async () => {
    const registered = await register();
    const read = () => fetch(registered.registration_client_uri, { headers: { authorization: `Bearer ${registered.registration_access_token}` } });
    expect((await read()).status).toBe(200);
    await setClientEnabled(tdb.database.db, registered.client_id, false, NO_AUDIT);
    await setClientEnabled(tdb.database.db, registered.client_id, true, NO_AUDIT);
    expect((await read()).status).toBe(401);
    const client = { id: registered.client_id, secret: registered.client_secret };
    expect((await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource: orders.identifier }, client)).status).toBe(200);
  });
});

describe('a deleted client leaves nothing usable', () => {
  it('deleted by an operator (admin API)', async () => {
    const app = await appWithTokens();
    await expectAllActive(app);
    expect((await adminCall(server.url, 'DELETE', `/clients/${app.client.id}`, { token: adminToken })).status).toBe(204);
    for (const token of Object.values(app.tokens)) expect(await introspect(token)).toEqual({ active: false });
    const refreshed = await refresh(server.url, app.world, app.tokens.refreshToken, { resource: orders.identifier });
    expect(refreshed.status).toBe(401);
    expect(refreshed.body.error).toBe('invalid_client');
  });

  it('deleted by itself (RFC 7592)', async () => {
    const created = await register();
    const client = { id: created.client_id, secret: created.client_secret };
    const jwt = await tokenFor(server.url, client, orders.identifier);
    const opaque = await tokenFor(server.url, client, ledger.identifier);
    for (const token of [jwt, opaque]) expect((await introspect(token)).active).toBe(true);
    const deleted = await fetch(created.registration_client_uri, {
      method: 'DELETE', headers: { authorization: `Bearer ${created.registration_access_token}` },
    });
    expect(deleted.status).toBe(204);
    for (const token of [jwt, opaque]) expect(await introspect(token)).toEqual({ active: false });
    expect((await postForm(`${server.url}/token`, { grant_type: 'client_credentials', resource: orders.identifier }, client)).status).toBe(401);
  });
});
