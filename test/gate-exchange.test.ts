// The decision endpoint and token exchange (RFC 8693) together, over real HTTP: a token a service
// exchanged on a person's (or another service's) behalf passes the gate with the original subject,
// the exchanging client and the actor chain in the identity headers, JWT or opaque, and stops
// passing the moment anything it came from is revoked; and a client authenticating with its
// platform's token (workload identity) both passing the gate and exchanging.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouteTable, type RouteRule } from '../src/domain/routes.ts';
import { tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { exchange, exchangeWorld, personToken, type ExchangeWorld } from './support/exchange.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { kubernetesClaims, startLocalIssuer, type LocalIssuer } from './support/local-issuer.ts';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { createClient } from '../src/services/clients.ts';
import { updateApi } from '../src/services/apis.ts';
import { assignRoleToClient } from '../src/services/roles.ts';
import { createIssuer } from '../src/services/trusted-issuers.ts';
import { decodeJwt } from 'jose';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let x: ExchangeWorld;
let caller: { id: string; secret: string };
let k8s: LocalIssuer;
let federatedId: string;
let inventory: string;

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

  // A service authenticating with its platform's token (docs/workload-identity.md): it may charge
  // payments itself, serves the inventory API, and may exchange inventory tokens for payments.
  k8s = await startLocalIssuer();
  const issuerName = unique('k8s');
  await createIssuer(db, { name: issuerName, issuer: k8s.url, kind: 'kubernetes', discovery: true }, { development: true }, NO_AUDIT);
  const charger = await role(db, [{ api: x.payments.identifier, scopes: ['payments:charge'] }]);
  const { client } = await createClient(db, {
    name: unique('shop'), roles: [charger.name], federated: { issuer: issuerName, subject: 'system:serviceaccount:shop:shop' },
    mayExchange: [{ api: x.payments.identifier, scopes: ['payments:charge'] }],
  }, NO_AUDIT);
  federatedId = client.clientId;
  const inventoryApi = await api(db, { scopes: ['inventory:use'] });
  inventory = inventoryApi.identifier;
  await updateApi(db, inventory, { owner: client.name }, NO_AUDIT);
  const inventoryUser = await role(db, [{ api: inventory, scopes: ['inventory:use'] }]);
  await assignRoleToClient(db, inventoryUser.name, caller.id, NO_AUDIT);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await k8s?.close();
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

describe('a federated client (platform token as client assertion)', () => {
  const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
  const platformToken = () => k8s.sign(kubernetesClaims(k8s.url, server.url, 'shop', 'shop'));

  it('gets a token by client credentials that passes the gate as itself', async () => {
    const response = await postForm(`${server.url}/token`, {
      grant_type: 'client_credentials', resource: x.payments.identifier,
      client_assertion_type: ASSERTION_TYPE, client_assertion: await platformToken(),
    });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const allowed = await gate('payments.example', response.body.access_token);
    expect(allowed.status).toBe(200);
    expect(allowed.headers).toMatchObject({
      'x-postern-client-id': federatedId, 'x-postern-subject': federatedId, 'x-postern-actor': '', 'x-postern-scope': 'payments:charge',
    });
  });

  it('exchanges a token for the API it serves, authenticated by its platform token, and the result passes the gate', async () => {
    const subject = await tokenFor(server.url, caller, inventory);
    const exchanged = await postForm(`${server.url}/token`, {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: subject,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: x.payments.identifier,
      client_assertion_type: ASSERTION_TYPE, client_assertion: await platformToken(),
    });
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    expect(decodeJwt(exchanged.body.access_token)).toMatchObject({ sub: caller.id, client_id: federatedId, act: { sub: federatedId } });
    const allowed = await gate('payments.example', exchanged.body.access_token);
    expect(allowed.status).toBe(200);
    expect(allowed.headers).toMatchObject({
      'x-postern-client-id': federatedId, 'x-postern-subject': caller.id, 'x-postern-actor': federatedId,
    });
  });
});
