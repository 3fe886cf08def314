// Every refusal of token exchange (RFC 8693 §2.2.2, RFC 6749 §5.2) answers its error with a
// description naming the rule, never a 500: missing, duplicate, oversized and malformed
// parameters, wrong token types, tokens that are not Postern's or no longer active, a subject
// token for an API the client does not serve, targets and scopes it may not have, the depth limit.
import { SignJWT, decodeJwt, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { updateClient } from '../src/services/clients.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { ACCESS_TOKEN_TYPE, exchange, exchangeWorld, personToken, TOKEN_EXCHANGE, type ExchangeWorld } from './support/exchange.ts';
import { adminCall, adminClient, tokenFor } from './support/admin.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let shallow: TestServer;
let x: ExchangeWorld;
let subject: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  shallow = await startServer(tdb.database, { ISSUER: server.url, TOKEN_EXCHANGE_MAX_DEPTH: '1' });
  x = await exchangeWorld(tdb.database.db);
  subject = await personToken(server.url, x);
}, 60_000);

afterAll(async () => {
  await shallow?.close();
  await server?.close();
  await tdb?.drop();
});

async function refused(res: Promise<{ status: number; body: any }>, error: string, description: RegExp) {
  const { status, body } = await res;
  expect(status, JSON.stringify(body)).toBe(error === 'invalid_client' ? 401 : 400);
  expect(body.error).toBe(error);
  expect(body.error_description).toMatch(description);
}

const raw = (body: string, client = x.front) => fetch(`${server.url}/token`, {
  method: 'POST',
  headers: {
    'content-type': 'application/x-www-form-urlencoded',
    authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`,
  },
  body,
}).then(async (res) => ({ status: res.status, body: await res.json() as any }));

describe('the request', () => {
  it('refuses a client without an exchange permission: unauthorized_client', async () => {
    await refused(exchange(server.url, x.bystander, subject), 'unauthorized_client', /no exchange permission/);
  });

  it('refuses missing parameters', async () => {
    await refused(postForm(`${server.url}/token`, { grant_type: TOKEN_EXCHANGE, subject_token_type: ACCESS_TOKEN_TYPE }, x.front),
      'invalid_request', /subject_token/);
    await refused(postForm(`${server.url}/token`, { grant_type: TOKEN_EXCHANGE, subject_token: subject }, x.front),
      'invalid_request', /subject_token_type/);
  });

  it('refuses unsupported token types', async () => {
    await refused(exchange(server.url, x.front, subject, { subject_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }),
      'invalid_request', /unsupported subject_token_type/);
    await refused(exchange(server.url, x.front, subject, { requested_token_type: 'urn:ietf:params:oauth:token-type:id_token' }),
      'invalid_request', /unsupported requested_token_type/);
    await refused(exchange(server.url, x.front, subject, { actor_token: subject }), 'invalid_request', /actor_token_type is required/);
    await refused(exchange(server.url, x.front, subject, { actor_token_type: ACCESS_TOKEN_TYPE }), 'invalid_request', /without actor_token/);
  });

  it('refuses a parameter given twice', async () => {
    const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE });
    form.append('subject_token', subject);
    await refused(raw(form.toString()), 'invalid_request', /subject_token/);
    const twoResources = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE });
    twoResources.append('resource', x.payments.identifier);
    twoResources.append('resource', x.ledger.identifier);
    await refused(raw(twoResources.toString()), 'invalid_request', /resource/);
  });

  it('refuses a huge subject_token before reading it', async () => {
    await refused(exchange(server.url, x.front, 'a'.repeat(20_000)), 'invalid_request', /subject_token must be at most 16384/);
  });
});

describe('the subject and actor tokens', () => {
  it('refuses what is not an active token of this server: invalid_grant', async () => {
    for (const token of ['not-a-token', 'a.b.c', `${subject.slice(0, -4)}AAAA`, 'eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.e30.']) {
      await refused(exchange(server.url, x.front, token), 'invalid_grant', /subject_token is not an active access token/);
    }
    // Signed by someone else's key, claiming to be ours.
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ client_id: x.world.client.id, scope: 'orders:read' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' }).setIssuer(server.url).setAudience(x.world.api.identifier)
      .setSubject(x.world.user.id).setJti('forged').setIssuedAt().setExpirationTime('5m').sign(privateKey);
    await refused(exchange(server.url, x.front, forged), 'invalid_grant', /not an active access token/);
  });

  it('refuses a token for an API the client does not serve', async () => {
    await refused(exchange(server.url, x.paymentsService, subject, { resource: x.ledger.identifier }), 'invalid_grant', /not for an API this client serves/);
  });

  it('refuses an actor token that is not the client\'s own', async () => {
    await refused(exchange(server.url, x.front, subject, { actor_token: subject, actor_token_type: ACCESS_TOKEN_TYPE, resource: x.payments.identifier }),
      'invalid_grant', /actor_token must be a token of the client/);
    await refused(exchange(server.url, x.front, subject, { actor_token: 'nope', actor_token_type: ACCESS_TOKEN_TYPE, resource: x.payments.identifier }),
      'invalid_grant', /actor_token is not an active access token/);
  });

  it('refuses a chain deeper than the limit', async () => {
    const first = await exchange(shallow.url, x.front, subject, { resource: x.payments.identifier });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    await refused(exchange(shallow.url, x.paymentsService, first.body.access_token, { resource: x.ledger.identifier }),
      'invalid_grant', /at most 1 exchanges/);
  });
});

describe('the target and scopes', () => {
  it('refuses targets: unknown, not permitted, ambiguous', async () => {
    await refused(exchange(server.url, x.front, subject, { resource: 'https://nowhere.internal' }), 'invalid_target', /unknown resource/);
    await refused(exchange(server.url, x.front, subject, { resource: x.ledger.identifier }), 'invalid_target', /may not exchange tokens for/);
    await refused(exchange(server.url, x.front, subject, { resource: x.payments.identifier, audience: x.ledger.identifier }),
      'invalid_target', /resource and audience name different APIs/);
    await updateClient(tdb.database.db, x.front.name, { mayExchange: [
      { api: x.payments.identifier, scopes: ['payments:charge', 'payments:refund'] }, { api: x.archive.identifier, scopes: ['archive:write'] },
    ] }, NO_AUDIT);
    try {
      await refused(exchange(server.url, x.front, subject), 'invalid_target', /several APIs/);
    } finally {
      await updateClient(tdb.database.db, x.front.name, { mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge', 'payments:refund'] }] }, NO_AUDIT);
    }
  });

  it('refuses scopes: undefined, not permitted, not held by the subject', async () => {
    const to = { resource: x.payments.identifier };
    await refused(exchange(server.url, x.front, subject, { ...to, scope: 'payments:steal' }), 'invalid_scope', /not defined by/);
    await refused(exchange(server.url, x.front, subject, { ...to, scope: 'payments:refund' }), 'invalid_scope', /subject does not hold/);
    await updateClient(tdb.database.db, x.front.name, { mayExchange: [{ api: x.payments.identifier, scopes: ['payments:refund'] }] }, NO_AUDIT);
    try {
      await refused(exchange(server.url, x.front, subject, { ...to, scope: 'payments:charge' }), 'invalid_scope', /not one this client may ask for/);
      await refused(exchange(server.url, x.front, subject, to), 'invalid_scope', /holds none of the scopes/);
    } finally {
      await updateClient(tdb.database.db, x.front.name, { mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge', 'payments:refund'] }] }, NO_AUDIT);
    }
  });

  it('refuses a DPoP header that is not a proof (invalid_dpop_proof; bound tokens: token-exchange-binding.test.ts)', async () => {
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${x.front.id}:${x.front.secret}`).toString('base64')}`,
        dpop: 'x.y.z',
      },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: x.payments.identifier }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_dpop_proof', error_description: 'invalid DPoP key binding' });
  });

  it('still exchanges after every refusal above', async () => {
    const ok = await exchange(server.url, x.front, subject, { resource: x.payments.identifier, scope: 'payments:charge' });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});

describe('the admin API', () => {
  it('sets an API\'s owner and a client\'s exchange permissions, and refuses bad ones', async () => {
    const token = await tokenFor(server.url, await adminClient(tdb.database.db));
    const owner = await adminCall(server.url, 'PATCH', `/apis/${encodeURIComponent(x.archive.identifier)}`, { token, body: { owner: x.bystander.name } });
    expect(owner.status, owner.text).toBe(200);
    expect(owner.body.ownerClientId).toBe(x.bystander.id);
    const set = await adminCall(server.url, 'PATCH', `/clients/${x.bystander.id}`, {
      token, body: { mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge'] }], mayImpersonate: true },
    });
    expect(set.status, set.text).toBe(200);
    expect(set.body).toMatchObject({
      mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge'] }], mayImpersonate: true,
      ownsApis: [x.archive.identifier], grantTypes: ['client_credentials', TOKEN_EXCHANGE],
    });
    for (const body of [{ mayExchange: [{ api: x.payments.identifier, scopes: [] }] }, { mayExchange: 'all' }, { mayImpersonate: 'yes' }]) {
      const bad = await adminCall(server.url, 'PATCH', `/clients/${x.bystander.id}`, { token, body });
      expect(bad.status, bad.text).toBe(400);
    }
    const undefinedScope = await adminCall(server.url, 'PATCH', `/clients/${x.bystander.id}`, {
      token, body: { mayExchange: [{ api: x.payments.identifier, scopes: ['payments:steal'] }] },
    });
    expect(undefinedScope.status, undefinedScope.text).toBe(400);
    const cleared = await adminCall(server.url, 'PATCH', `/clients/${x.bystander.id}`, { token, body: { mayExchange: [], mayImpersonate: false } });
    expect(cleared.body).toMatchObject({ mayExchange: [], mayImpersonate: false, grantTypes: ['client_credentials'] });
    await adminCall(server.url, 'PATCH', `/apis/${encodeURIComponent(x.archive.identifier)}`, { token, body: { owner: null } });
  });

  it('gives a client its exchange permissions when it is created, which then exchanges, and refuses bad ones with nothing created', async () => {
    const token = await tokenFor(server.url, await adminClient(tdb.database.db));
    const name = `front-created-${Date.now()}`;
    const created = await adminCall(server.url, 'POST', '/clients', {
      token, body: { name, mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge'] }] },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.client).toMatchObject({
      mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge'] }], mayImpersonate: false,
      grantTypes: ['client_credentials', TOKEN_EXCHANGE],
    });
    // It serves the front API in place of x.front, and exchanges the person's token at once.
    const front = { id: created.body.client.clientId as string, secret: created.body.clientSecret as string };
    await adminCall(server.url, 'PATCH', `/apis/${encodeURIComponent(x.world.api.identifier)}`, { token, body: { owner: name } });
    try {
      const exchanged = await exchange(server.url, front, await personToken(server.url, x), { resource: x.payments.identifier });
      expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
      expect(decodeJwt(exchanged.body.access_token).act).toEqual({ sub: front.id });
    } finally {
      await adminCall(server.url, 'PATCH', `/apis/${encodeURIComponent(x.world.api.identifier)}`, { token, body: { owner: x.front.name } });
    }
    const impersonating = await adminCall(server.url, 'POST', '/clients', {
      token, body: { name: `${name}-i`, mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge'] }], mayImpersonate: true },
    });
    expect(impersonating.body.client).toMatchObject({ mayImpersonate: true });
    for (const body of [
      { name: `${name}-bad1`, mayExchange: [{ api: x.payments.identifier, scopes: ['payments:steal'] }] },
      { name: `${name}-bad2`, mayExchange: [{ api: 'urn:postern', scopes: ['admin:write'] }] },
      { name: `${name}-bad3`, mayExchange: 'all' },
    ]) {
      const bad = await adminCall(server.url, 'POST', '/clients', { token, body });
      expect(bad.status, bad.text).toBe(400);
      expect((await adminCall(server.url, 'GET', `/clients/${body.name}`, { token })).status).toBe(404);
    }
  });
});
