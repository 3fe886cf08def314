// Network allow-lists: a client limited to source networks is refused elsewhere with 401
// invalid_client (RFC 6749 §5.2) at every endpoint where it authenticates, whatever its
// credentials; X-Forwarded-For counts only with TRUST_PROXY, and then only its last entry.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, updateClient } from '../src/services/clients.ts';
import { createRegistrationToken } from '../src/services/registration.ts';
import { createLogger } from '../src/platform/logger.ts';
import { adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { api, role, unique } from './support/fixtures.ts';
import { startServer, type TestServer } from './support/server.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';

let tdb: TestDatabase;
let direct: TestServer;
let proxied: TestServer;
let orders: Awaited<ReturnType<typeof api>>;
let reader: Awaited<ReturnType<typeof role>>;
const logLines: string[] = [];

async function restrictedClient(networks: string[]) {
  const { client, clientSecret } = await createClient(tdb.database.db, {
    name: unique('net'), roles: [reader.name], allowedNetworks: networks,
  }, NO_AUDIT);
  return { id: client.clientId, secret: clientSecret!, view: client };
}

/** A form POST with Basic credentials and extra headers (X-Forwarded-For). */
async function post(url: string, form: Record<string, string>, client: { id: string; secret: string }, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`,
      ...headers,
    },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, headers: response.headers, body: (await response.json().catch(() => undefined)) as any };
}

const tokenForm = () => ({ grant_type: 'client_credentials', resource: orders.identifier });

beforeAll(async () => {
  tdb = await createTestDatabase();
  const sink = new Writable({ write(chunk, _encoding, done) { logLines.push(String(chunk)); done(); } });
  direct = await startServer(tdb.database, {}, '', { logger: createLogger('info', sink) });
  proxied = await startServer(tdb.database, { TRUST_PROXY: 'true' });
  orders = await api(tdb.database.db, { scopes: ['orders:read'] });
  reader = await role(tdb.database.db, [{ api: orders.identifier, scopes: ['orders:read'] }]);
});

afterAll(async () => {
  await direct?.close();
  await proxied?.close();
  await tdb?.drop();
});

describe('a client limited to some networks', () => {
  it('gets tokens from inside them (the test connects from 127.0.0.1)', async () => {
    const client = await restrictedClient(['10.0.0.0/8', '127.0.0.0/8']);
    expect(client.view.allowedNetworks).toEqual(['10.0.0.0/8', '127.0.0.0/8']);
    const res = await post(`${direct.url}/token`, tokenForm(), client);
    expect(res.status).toBe(200);
  });

  it('is refused from outside at the token, introspection and revocation endpoints, and a warning is logged', async () => {
    const inside = await restrictedClient(['127.0.0.1']);
    const token = (await post(`${direct.url}/token`, tokenForm(), inside)).body.access_token as string;
    const client = await restrictedClient(['10.0.0.0/8', 'fd00::/8']);
    logLines.length = 0;
    for (const [path, form] of [
      ['/token', tokenForm()],
      ['/token/introspection', { token }],
      ['/token/revocation', { token }],
    ] as const) {
      const res = await post(`${direct.url}${path}`, form, client);
      expect(res.status, path).toBe(401);
      expect(res.body, path).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
      expect(res.headers.get('www-authenticate'), path).toMatch(/^Basic realm=".*", error="invalid_client"/);
    }
    // The token itself was not revoked by the refused request.
    expect((await post(`${direct.url}/token/introspection`, { token }, inside)).body.active).toBe(true);

    const warnings = logLines.map((line) => JSON.parse(line)).filter((entry) => entry.event === 'client.network_refused');
    expect(warnings.map((entry) => entry.route)).toEqual(['token', 'introspection', 'revocation']);
    expect(warnings[0]).toMatchObject({ level: 40, clientId: client.id, address: '127.0.0.1' });
    // Identifiers and addresses only: no credentials of any kind in the log.
    expect(logLines.join('')).not.toContain(client.secret);
    expect(logLines.join('')).not.toContain(token);
  });

  it('is refused even with wrong credentials before they are checked, and with a bad secret inside', async () => {
    const client = await restrictedClient(['10.0.0.0/8']);
    const outside = await post(`${direct.url}/token`, tokenForm(), { id: client.id, secret: 'x'.repeat(43) });
    expect(outside.status).toBe(401);
    expect(outside.body.error).toBe('invalid_client');
  });

  it('takes a changed list at once: lifting the restriction lets it in, setting it again keeps it out', async () => {
    const client = await restrictedClient(['192.0.2.0/24']);
    expect((await post(`${direct.url}/token`, tokenForm(), client)).status).toBe(401);
    await updateClient(tdb.database.db, client.id, { allowedNetworks: [] }, NO_AUDIT);
    expect((await post(`${direct.url}/token`, tokenForm(), client)).status).toBe(200);
    await updateClient(tdb.database.db, client.id, { allowedNetworks: ['192.0.2.0/24'] }, NO_AUDIT);
    expect((await post(`${direct.url}/token`, tokenForm(), client)).status).toBe(401);
  });

  it('does not trust X-Forwarded-For without TRUST_PROXY', async () => {
    const client = await restrictedClient(['10.0.0.0/8']);
    const res = await post(`${direct.url}/token`, tokenForm(), client, { 'x-forwarded-for': '10.1.2.3' });
    expect(res.status).toBe(401);
  });
});

describe('a self-registered client limited to some networks', () => {
  /** RFC 7592 client configuration, with the registration access token as Bearer. */
  async function manage(method: string, uri: string, token: string, body?: unknown) {
    const res = await fetch(uri, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  it('is refused from outside at reading, updating and deleting its configuration (RFC 7592)', async () => {
    const { token: initial } = await createRegistrationToken(tdb.database.db, { roles: [reader.name] }, NO_AUDIT);
    const registered = await fetch(`${direct.url}/reg`, {
      method: 'POST',
      headers: { authorization: `Bearer ${initial}`, 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: unique('self'), grant_types: ['client_credentials'] }),
    });
    expect(registered.status).toBe(201);
    const created = await registered.json() as { client_id: string; registration_access_token: string; registration_client_uri: string };
    const uri = created.registration_client_uri;
    let rat = created.registration_access_token;
    const update = { client_id: created.client_id, client_name: unique('renamed'), grant_types: ['client_credentials'] };

    await updateClient(tdb.database.db, created.client_id, { allowedNetworks: ['10.0.0.0/8'] }, NO_AUDIT);
    logLines.length = 0;
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const res = await manage(method, uri, rat, method === 'PUT' ? update : undefined);
      expect(res.status, method).toBe(401);
      expect(res.body, method).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    }
    const warnings = logLines.map((line) => JSON.parse(line)).filter((entry) => entry.event === 'client.network_refused');
    expect(warnings.map((entry) => entry.route)).toEqual(['client', 'client_update', 'client_delete']);
    expect(logLines.join('')).not.toContain(rat);

    // From inside its networks, the same token still manages it: nothing was changed or deleted.
    await updateClient(tdb.database.db, created.client_id, { allowedNetworks: ['127.0.0.0/8'] }, NO_AUDIT);
    expect((await manage('GET', uri, rat)).status).toBe(200);
    const updated = await manage('PUT', uri, rat, update);
    expect(updated.status).toBe(200);
    rat = updated.body.registration_access_token;
    expect((await manage('DELETE', uri, rat)).status).toBe(204);
  });
});

describe('behind a trusted proxy (TRUST_PROXY=true)', () => {
  it('uses the address the proxy appended last, IPv4 and IPv6', async () => {
    const client = await restrictedClient(['10.0.0.0/8', '2001:db8::/32']);
    for (const forwarded of ['10.1.2.3', '2001:db8::5', '192.0.2.9, 10.1.2.3', '::ffff:10.9.9.9']) {
      const res = await post(`${proxied.url}/token`, tokenForm(), client, { 'x-forwarded-for': forwarded });
      expect(res.status, forwarded).toBe(200);
    }
    // Entries before the last were written by the caller, who could put anything there.
    for (const forwarded of ['10.1.2.3, 192.0.2.9', '2001:db9::1', 'not-an-address']) {
      const res = await post(`${proxied.url}/token`, tokenForm(), client, { 'x-forwarded-for': forwarded });
      expect(res.status, forwarded).toBe(401);
      expect(res.body.error, forwarded).toBe('invalid_client');
    }
  });

  it('uses the socket address when the proxy sent no X-Forwarded-For', async () => {
    const client = await restrictedClient(['10.0.0.0/8']);
    expect((await post(`${proxied.url}/token`, tokenForm(), client)).status).toBe(401);
    const local = await restrictedClient(['127.0.0.0/8']);
    expect((await post(`${proxied.url}/token`, tokenForm(), local)).status).toBe(200);
  });
});

describe('registering networks', () => {
  it('normalizes ranges and refuses what is not a network', async () => {
    const client = await restrictedClient(['10.1.2.3/8', 'fd00::1/8', '192.0.2.7', '::ffff:10.0.0.0/104']);
    expect(client.view.allowedNetworks).toEqual(['10.0.0.0/8', 'fd00::/8', '192.0.2.7/32']);
    for (const bad of ['10.0.0.0/33', '300.1.1.1', 'fd00::/129', 'example.com']) {
      await expect(createClient(tdb.database.db, { name: unique('bad'), allowedNetworks: [bad] }, NO_AUDIT), bad)
        .rejects.toMatchObject({ code: 'invalid_input', fields: ['allowedNetworks'] });
    }
  });

  it('is a field of the admin API, on create and update', async () => {
    const admin = await adminClient(tdb.database.db);
    const call = adminClientFor(new URL(direct.url).origin, await tokenFor(direct.url, admin));
    const created = await call('POST', '/clients', { name: unique('net'), allowedNetworks: ['10.0.0.0/8', '2001:db8::/32'] });
    expect(created.status).toBe(201);
    expect(created.body.client.allowedNetworks).toEqual(['10.0.0.0/8', '2001:db8::/32']);
    const cleared = await call('PATCH', `/clients/${created.body.client.clientId}`, { allowedNetworks: [] });
    expect(cleared.body.allowedNetworks).toEqual([]);
    const bad = await call('PATCH', `/clients/${created.body.client.clientId}`, { allowedNetworks: ['10.0.0.0/40'] });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'invalid_input' });
  });
});
