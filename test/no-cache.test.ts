// Responses that carry credentials, or refuse to, must not be cached (RFC 6749 §5.1): every one
// says `Cache-Control: no-store` and, for HTTP/1.0 caches, `Pragma: no-cache`. Checked on each
// answer that does: the token endpoint (issued, refused, over its limit), introspection (both
// paths), userinfo, registration, and the admin API's secrets on either listener.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistrationToken } from '../src/services/registration.ts';
import { adminCall, adminClient, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { freePort } from './support/process.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';
import { exchangeCode, refresh, signIn, signInWorld } from './support/sign-in.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let server: TestServer;
let billing: Awaited<ReturnType<typeof serviceClient>>;
let ledger: Awaited<ReturnType<typeof api>>;

function expectNoCache(answer: { headers: Headers }, what: string) {
  expect(answer.headers.get('cache-control'), what).toBe('no-store');
  expect(answer.headers.get('pragma'), what).toBe('no-cache');
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  const db = tdb.database.db;
  ledger = await api(db, { scopes: ['ledger:read'], tokenFormat: 'opaque' });
  billing = await serviceClient(db, [(await role(db, [{ api: ledger.identifier, scopes: ['ledger:read'] }])).name]);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

describe('Pragma: no-cache next to Cache-Control: no-store', () => {
  it('on the token endpoint: tokens issued, and every kind of refusal', async () => {
    const token = `${server.url}/token`;
    const issued = await postForm(token, { grant_type: 'client_credentials' }, billing);
    expect(issued.status).toBe(200);
    expectNoCache(issued, 'client_credentials');
    const refusals: [string, Awaited<ReturnType<typeof postForm>>][] = [
      ['invalid_client', await postForm(token, { grant_type: 'client_credentials' }, { id: billing.id, secret: 'wrong' })],
      ['no client authentication', await postForm(token, { grant_type: 'client_credentials' })],
      ['invalid_scope', await postForm(token, { grant_type: 'client_credentials', scope: 'ledger:write' }, billing)],
      ['invalid_grant', await postForm(token, { grant_type: 'refresh_token', refresh_token: 'x'.repeat(43) }, billing)],
    ];
    for (const [what, answer] of refusals) {
      expect(answer.status, what).toBeGreaterThanOrEqual(400);
      expectNoCache(answer, what);
    }
  });

  it('on a person\'s tokens: code exchange, refresh and userinfo', async () => {
    const world = await signInWorld(tdb.database.db);
    const flow = await signIn(server.url, world);
    const tokens = await exchangeCode(server.url, world, flow.code, flow.verifier);
    expect(tokens.status).toBe(200);
    expectNoCache(tokens, 'authorization_code');
    const refreshed = await refresh(server.url, world, tokens.body.refresh_token, { resource: world.api.identifier });
    expect(refreshed.status).toBe(200);
    expectNoCache(refreshed, 'refresh_token');
    const userinfo = await fetch(`${server.url}/me`, { headers: { authorization: `Bearer ${tokens.body.access_token}` } });
    expect(userinfo.status).toBe(200);
    expectNoCache(userinfo, 'userinfo');
  });

  it('on introspection: the fast path for JWTs, the provider for opaque tokens, and refusals', async () => {
    const introspect = `${server.url}/token/introspection`;
    const admin = await adminClient(tdb.database.db);
    const jwt = await tokenFor(server.url, admin);
    const fast = await postForm(introspect, { token: jwt }, admin);
    expect(fast.body.active).toBe(true);
    expectNoCache(fast, 'JWT introspection');
    const opaque = (await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, billing)).body.access_token;
    const slow = await postForm(introspect, { token: opaque }, billing);
    expect(slow.body.active).toBe(true);
    expectNoCache(slow, 'opaque introspection');
    const refused = await postForm(introspect, { token: opaque }, { id: billing.id, secret: 'wrong' });
    expect(refused.status).toBe(401);
    expectNoCache(refused, 'introspection refused');
  });

  it('on registration answers, which carry the client secret and the registration access token', async () => {
    const { token } = await createRegistrationToken(tdb.database.db, { roles: [] }, NO_AUDIT);
    const created = await fetch(`${server.url}/reg`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: unique('self'), grant_types: ['client_credentials'] }),
    });
    const body = await created.json() as { client_secret?: string; registration_client_uri: string; registration_access_token: string };
    expect(created.status).toBe(201);
    expect(body.client_secret).toBeTruthy();
    expectNoCache(created, 'registration');
    const read = await fetch(body.registration_client_uri, { headers: { authorization: `Bearer ${body.registration_access_token}` } });
    expect(read.status).toBe(200);
    expectNoCache(read, 'registration read');
  });

  it('on the admin API\'s secrets, on the public listener and on its own', async () => {
    const adminPort = await freePort();
    const separate = await startServer(tdb.database, { ADMIN_PORT: String(adminPort) });
    const listener = http.createServer(separate.app.adminKoa.callback());
    await new Promise<void>((resolve) => listener.listen(adminPort, '127.0.0.1', resolve));
    try {
      const admin = await adminClient(tdb.database.db);
      const listeners = [
        [new URL(server.url).origin, await tokenFor(server.url, admin)],
        [`http://127.0.0.1:${(listener.address() as AddressInfo).port}`, await tokenFor(separate.url, admin)],
      ] as const;
      for (const [base, token] of listeners) {
        const created = await adminCall(base, 'POST', '/clients', { token, body: { name: unique('svc') } });
        expect(created.status).toBe(201);
        expect(created.body.clientSecret).toBeTruthy();
        expectNoCache(created, `${base} create`);
        const rotated = await adminCall(base, 'POST', `/clients/${created.body.client.clientId}/rotate-secret`, { token, body: {} });
        expect(rotated.status).toBe(200);
        expectNoCache(rotated, `${base} rotate-secret`);
        const refused = await adminCall(base, 'POST', '/clients', { token: 'not-a-token', body: { name: unique('svc') } });
        expect(refused.status).toBe(401);
        expectNoCache(refused, `${base} refused`);
      }
    } finally {
      listener.closeAllConnections();
      await new Promise((resolve) => listener.close(resolve));
      await separate.close();
    }
  });

  it('on the 429 of a limit', async () => {
    const limited = await startServer(tdb.database, { RATE_LIMIT_CLIENT: '1' });
    try {
      const ask = () => postForm(`${limited.url}/token`, { grant_type: 'client_credentials' }, billing);
      expect((await ask()).status).toBe(200);
      const over = await ask();
      expect(over.status).toBe(429);
      expectNoCache(over, '429');
    } finally {
      await limited.close();
    }
  });
});
