// The decision endpoint and token exchange (RFC 8693) together, over real HTTP: a token a service
// exchanged on a person's (or another service's) behalf passes the gate with the original subject,
// the exchanging client and the actor chain in the identity headers, JWT or opaque, and stops
// passing the moment anything it came from is revoked.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouteTable, type RouteRule } from '../src/domain/routes.ts';
import { tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { exchange, exchangeWorld, personToken, type ExchangeWorld } from './support/exchange.ts';
import { role, serviceClient } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let x: ExchangeWorld;
let caller: { id: string; secret: string };

const rule = (fields: Partial<RouteRule> & Pick<RouteRule, 'id' | 'api' | 'host'>): RouteRule => ({
  path: '/*', methods: [], public: false, scopesAll: [], scopesAny: [], roles: [], clients: [],
  senderConstrained: null, rateLimitPerMinute: null, cacheSeconds: null, ...fields,
});

beforeAll(async () => {
  tdb = await createTestDatabase();
  const { db } = tdb.database;
  x = await exchangeWorld(db);
  // A service calling the front API on its own account, holding the charge scope on payments.
  const callerRole = await role(db, [
    { api: x.world.api.identifier, scopes: ['orders:read'] },
    { api: x.payments.identifier, scopes: ['payments:charge'] },
  ]);
  caller = await serviceClient(db, [callerRole.name]);
  const routes = new RouteTable([
    rule({ id: 'payments', api: x.payments.identifier, host: 'payments.example', scopesAll: ['payments:charge'] }),
    rule({ id: 'ledger', api: x.ledger.identifier, host: 'ledger.example', scopesAll: ['ledger:read'] }),
  ]);
  server = await startServer(tdb.database, {}, '', { gateRoutes: routes });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

/** What nginx's auth_request sends for GET / on `host` with `token`. */
function gate(host: string, token: string): Promise<Answer> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: url.hostname, port: url.port, method: 'GET', path: '/gate/auth-request',
      headers: {
        'x-original-method': 'GET', 'x-original-uri': '/things/1', 'x-forwarded-host': host, 'x-forwarded-proto': 'https',
        authorization: `Bearer ${token}`,
      },
    }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

describe('an exchanged token at the gate', () => {
  it('passes with the person as subject, the exchanging client, and the actor chain; a revoked subject token stops it at once', async () => {
    const subject = await personToken(server.url, x);
    const toPayments = await exchange(server.url, x.front, subject, { resource: x.payments.identifier });
    expect(toPayments.status).toBe(200);
    const allowed = await gate('payments.example', toPayments.body.access_token);
    expect(allowed.status).toBe(200);
    expect(allowed.headers).toMatchObject({
      'x-postern-subject': x.world.user.id, 'x-postern-client-id': x.front.id, 'x-postern-actor': x.front.id,
      'x-postern-scope': 'payments:charge',
    });

    // A second exchange, to the ledger API whose tokens are opaque: the chain is nested.
    const toLedger = await exchange(server.url, x.paymentsService, toPayments.body.access_token, { resource: x.ledger.identifier });
    expect(toLedger.status).toBe(200);
    expect(toLedger.body.access_token.split('.')).toHaveLength(1);
    const nested = await gate('ledger.example', toLedger.body.access_token);
    expect(nested.status).toBe(200);
    expect(nested.headers).toMatchObject({
      'x-postern-subject': x.world.user.id, 'x-postern-client-id': x.paymentsService.id,
      'x-postern-actor': `${x.paymentsService.id} ${x.front.id}`, 'x-postern-scope': 'ledger:read',
    });

    // The person's app revokes the token everything came from.
    expect((await postForm(`${server.url}/token/revocation`, { token: subject }, x.world.client)).status).toBe(200);
    const afterJwt = await gate('payments.example', toPayments.body.access_token);
    expect(afterJwt.status).toBe(401);
    expect(afterJwt.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    const afterOpaque = await gate('ledger.example', toLedger.body.access_token);
    expect(afterOpaque.status).toBe(401);
    expect(afterOpaque.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
  });

  it('revoking an opaque token in the middle of a chain stops what was exchanged from it', async () => {
    const subject = await personToken(server.url, x);
    const toPayments = await exchange(server.url, x.front, subject, { resource: x.payments.identifier });
    const toLedger = await exchange(server.url, x.paymentsService, toPayments.body.access_token, { resource: x.ledger.identifier });
    expect((await gate('ledger.example', toLedger.body.access_token)).status).toBe(200);
    // Revoking the JWT the opaque token came from.
    expect((await postForm(`${server.url}/token/revocation`, { token: toPayments.body.access_token }, x.front)).status).toBe(200);
    expect((await gate('ledger.example', toLedger.body.access_token)).status).toBe(401);
    expect((await gate('payments.example', toPayments.body.access_token)).status).toBe(401);
  });

  it('passes a token exchanged on a service\'s behalf with the service as subject', async () => {
    const subject = await tokenFor(server.url, caller, x.world.api.identifier);
    const toPayments = await exchange(server.url, x.front, subject, { resource: x.payments.identifier });
    expect(toPayments.status).toBe(200);
    const allowed = await gate('payments.example', toPayments.body.access_token);
    expect(allowed.status).toBe(200);
    expect(allowed.headers).toMatchObject({
      'x-postern-subject': caller.id, 'x-postern-client-id': x.front.id, 'x-postern-actor': x.front.id,
      'x-postern-scope': 'payments:charge',
    });
    expect((await postForm(`${server.url}/token/revocation`, { token: subject }, caller)).status).toBe(200);
    expect((await gate('payments.example', toPayments.body.access_token)).status).toBe(401);
  });
});
