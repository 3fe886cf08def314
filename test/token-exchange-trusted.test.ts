// Token exchange (RFC 8693) of a JWT from a trusted external issuer (a Kubernetes service-account
// token, docs/workload-identity.md): the subject is the client bound to the token's subject, the
// token must be for an API the exchanging client serves, and the new token names that client as
// `sub` with the exchanging one in `act`.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_AUDIT } from '../src/domain/audit-events.ts';
import { updateApi } from '../src/services/apis.ts';
import { createClient, updateClient } from '../src/services/clients.ts';
import { createIssuer } from '../src/services/trusted-issuers.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { exchange, introspectAs } from './support/exchange.ts';
import { api, role, serviceClient, unique } from './support/fixtures.ts';
import { kubernetesClaims, startLocalIssuer, type LocalIssuer } from './support/local-issuer.ts';
import { startServer, type TestServer } from './support/server.ts';

const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

let tdb: TestDatabase;
let server: TestServer;
let k8s: LocalIssuer;
let front: { id: string; secret: string; name: string };
let workerId: string;
let frontApi: string;
let payments: string;

beforeAll(async () => {
  tdb = await createTestDatabase();
  const db = tdb.database.db;
  server = await startServer(tdb.database);
  k8s = await startLocalIssuer();
  frontApi = (await api(db, { scopes: ['front:use'] })).identifier;
  payments = (await api(db, { scopes: ['payments:charge', 'payments:refund'] })).identifier;
  const charger = await role(db, [{ api: payments, scopes: ['payments:charge'] }]);
  const issuerName = unique('k8s');
  await createIssuer(db, { name: issuerName, issuer: k8s.url, kind: 'kubernetes', discovery: true }, { development: true }, NO_AUDIT);
  const { client } = await createClient(db, {
    name: unique('worker'), roles: [charger.name], federated: { issuer: issuerName, subject: 'system:serviceaccount:shop:worker' },
  }, NO_AUDIT);
  workerId = client.clientId;
  front = await serviceClient(db);
  await updateApi(db, frontApi, { owner: front.name }, NO_AUDIT);
  await updateClient(db, front.name, { mayExchange: [{ api: payments, scopes: ['payments:charge', 'payments:refund'] }] }, NO_AUDIT);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await k8s?.close();
  await tdb?.drop();
});

const k8sToken = (account: string, audience: string) => k8s.sign(kubernetesClaims(k8s.url, audience, 'shop', account));

describe('a trusted issuer\'s JWT as subject token', () => {
  it('is exchanged for a token whose subject is the bound client, acted for by the exchanging one', async () => {
    const res = await exchange(server.url, front, await k8sToken('worker', frontApi), { subject_token_type: JWT_TYPE, resource: payments });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // What the worker holds on payments (charge), within what front may ask for.
    expect(res.body.scope).toBe('payments:charge');
    const claims = decodeJwt(res.body.access_token);
    expect(claims).toMatchObject({ sub: workerId, client_id: front.id, act: { sub: front.id }, aud: payments });
    expect((await introspectAs(server.url, front, res.body.access_token)).body).toMatchObject({ active: true, act: { sub: front.id } });
    // Disabling the bound client ends the exchanged token.
    await updateClient(tdb.database.db, workerId, { enabled: false }, NO_AUDIT);
    try {
      expect((await introspectAs(server.url, front, res.body.access_token)).body).toEqual({ active: false });
    } finally {
      await updateClient(tdb.database.db, workerId, { enabled: true }, NO_AUDIT);
    }
  });

  it('refuses one for an API the client does not serve, and an unbound subject', async () => {
    const elsewhere = await exchange(server.url, front, await k8sToken('worker', payments), { subject_token_type: JWT_TYPE, resource: payments });
    expect(elsewhere.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/audience/) });
    const unbound = await exchange(server.url, front, await k8sToken('stranger', frontApi), { subject_token_type: JWT_TYPE, resource: payments });
    expect(unbound.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/not bound to a client/) });
    const forged = await k8s.sign(kubernetesClaims(k8s.url, frontApi, 'shop', 'worker'), { key: await k8s.strangerKey() });
    const refused = await exchange(server.url, front, forged, { subject_token_type: JWT_TYPE, resource: payments });
    expect(refused.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/signature/) });
  });
});
