// The admin API's /issuers routes and a client's federation over real HTTP; bodies checked
// against the schemas the OpenAPI document is generated from; changes recorded in the audit log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as i from '../src/http/admin/issuer-schemas.ts';
import * as s from '../src/http/admin/schemas.ts';
import { listAuditEvents } from '../src/services/audit-queries.ts';
import { adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { kubernetesClaims, startLocalIssuer, type LocalIssuer } from './support/local-issuer.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;
let issuer: LocalIssuer;
let call: ReturnType<typeof adminClientFor>;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
  issuer = await startLocalIssuer();
  const admin = await adminClient(tdb.database.db);
  call = adminClientFor(server.url, await tokenFor(server.url, admin));
});

afterAll(async () => {
  await server?.close();
  await issuer?.close();
  await tdb?.drop();
});

describe('admin API: trusted issuers', () => {
  it('creates, lists, shows, binds a client, updates and deletes', async () => {
    const created = await call('POST', '/issuers', { name: 'k8s-prod', issuer: issuer.url, kind: 'kubernetes', discovery: true });
    expect(created.status).toBe(201);
    const view = i.issuerView.parse(created.body);
    expect(view).toMatchObject({ name: 'k8s-prod', issuer: issuer.url, kind: 'kubernetes', jwksSource: 'discovery', enabled: true, clients: [] });

    const bad = await call('POST', '/issuers', { name: 'x', issuer: issuer.url, discovery: true, jwksUri: issuer.jwksUrl });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_input');
    expect((await call('POST', '/issuers', { name: 'k8s-prod', issuer: `${issuer.url}/other`, discovery: true })).status).toBe(409);

    const client = await call('POST', '/clients', { name: 'orders', federated: { issuer: 'k8s-prod', subject: 'system:serviceaccount:shop:orders' } });
    expect(client.status).toBe(201);
    const withSecret = s.clientWithSecret.parse(client.body);
    expect(withSecret.clientSecret).toBeNull();
    expect(withSecret.client.federation).toMatchObject({ issuer: 'k8s-prod', subject: 'system:serviceaccount:shop:orders', claims: {} });

    // The new binding holds at once: its token authenticates it.
    const token = await postForm(`${server.url}/token`, {
      grant_type: 'client_credentials', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await issuer.sign(kubernetesClaims(issuer.url, server.url, 'shop', 'orders')),
    });
    // No API is named and none is the default: the client authenticated, then was refused a target.
    expect(token.body.error).not.toBe('invalid_client');

    const listed = i.issuerView.array().parse((await call('GET', '/issuers')).body.items);
    expect(listed.map((item) => item.clients)).toEqual([['orders']]);
    expect(i.issuerView.parse((await call('GET', `/issuers/${view.id}`)).body).name).toBe('k8s-prod');
    const disabled = await call('PATCH', '/issuers/k8s-prod', { enabled: false });
    expect(i.issuerView.parse(disabled.body).enabled).toBe(false);

    expect((await call('DELETE', '/issuers/k8s-prod')).status).toBe(409);
    expect((await call('DELETE', '/issuers/k8s-prod?force=true')).status).toBe(204);
    expect((await call('GET', '/issuers/k8s-prod')).status).toBe(404);

    await server.app.audit.flush();
    const events = await listAuditEvents(tdb.database.db, { limit: 100 });
    const types = events.items.map((event) => event.type);
    expect(types).toEqual(expect.arrayContaining(['issuer.created', 'issuer.updated', 'issuer.deleted']));
  });

  it('is in the OpenAPI document', async () => {
    const document = (await call('GET', '/openapi.json')).body;
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/issuers', '/issuers/{id}']));
  });
});
