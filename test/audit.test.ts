// The audit log: append-only in the database, batched writes that never throw, and, after a scripted
// run of the flows over real HTTP, the expected events with the right fields and none of the
// secrets or tokens used anywhere in the table.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as s from '../src/http/admin/schemas.ts';
import { pruneAuditEvents } from '../src/services/audit-queries.ts';
import { AuditLog } from '../src/services/audit.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { adminCall, adminClient, adminClientFor, tokenFor } from './support/admin.ts';
import { unique } from './support/fixtures.ts';
import { postForm, startServer, type TestServer } from './support/server.ts';

let tdb: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  tdb = await createTestDatabase();
  server = await startServer(tdb.database);
});

afterAll(async () => {
  await server?.close();
  await tdb?.drop();
});

const rows = () => tdb.database.db.selectFrom('audit_events').selectAll().orderBy('id').execute();

describe('audit_events is append-only', () => {
  it('refuses UPDATE, DELETE and TRUNCATE; the retention path deletes old rows only', async () => {
    const db = tdb.database.db;
    const log = new AuditLog(db, { flushIntervalMs: 0, countIntervalMs: 0 });
    log.record({ type: 'key.rotated', actor: { type: 'system' } });
    await log.flush();
    const before = await rows();
    expect(before.length).toBeGreaterThan(0);

    await expect(sql`update audit_events set type = 'x'`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`delete from audit_events`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate audit_events`.execute(db)).rejects.toThrow(/append-only/);
    // The setting is scoped to the retention transaction: it does not leak to this connection.
    await expect(db.deleteFrom('audit_events').execute()).rejects.toThrow(/append-only/);
    expect((await rows()).length).toBe(before.length);

    // 1-day retention, as if a year had passed: everything goes, and the pruning is recorded.
    const deleted = await pruneAuditEvents(db, 1, log, new Date(Date.now() + 365 * 86400_000));
    expect(deleted).toBe(before.length);
    await log.close();
    const after = await rows();
    expect(after.map((row) => row.type)).toEqual(['audit.pruned']);
    expect(after[0]!.details).toMatchObject({ deleted: before.length });
    // Retention 0 keeps everything.
    expect(await pruneAuditEvents(db, 0, log, new Date(Date.now() + 365 * 86400_000))).toBe(0);
  });
});

describe('AuditLog', () => {
  it('keeps allow-listed details only and masks credential-looking strings', async () => {
    const log = new AuditLog(tdb.database.db, { flushIntervalMs: 0, countIntervalMs: 0 });
    const secret = 'Zq9xW3vT7yB2nM5kL8pR4sD6fG1hJ0aC3eV5bN7mQ2w';
    const requestId = unique('req');
    log.record({
      type: 'client.created', actor: { type: 'operator', id: 'alice' }, target: { type: 'client', id: 'c1' }, requestId,
      details: {
        name: 'billing', client_secret: secret, password: 'hunter2', token: secret, description: `see ${secret}`,
        changes: { name: 'x', secret }, roles: ['a', { nested: true }],
      } as never,
    });
    // An unknown type never throws into the caller.
    expect(() => log.record({ type: 'nope' as never, actor: { type: 'system' } })).not.toThrow();
    await log.close();
    const [row] = await tdb.database.db.selectFrom('audit_events').selectAll().where('request_id', '=', requestId).execute();
    expect(row!.details).toEqual({ name: 'billing', description: 'see [redacted]', changes: { name: 'x' }, roles: ['a'] });
    expect(row).toMatchObject({ type: 'client.created', actor_type: 'operator', actor_id: 'alice', client_id: 'c1', outcome: 'success' });
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(JSON.stringify(row)).not.toContain('hunter2');
  });

  it('holds a bounded number of events, drops the oldest and records the drop', async () => {
    const log = new AuditLog(tdb.database.db, { flushIntervalMs: 0, countIntervalMs: 0, maxBuffered: 3 });
    const requestId = unique('burst');
    for (let i = 0; i < 5; i += 1) log.record({ type: 'login.lockout', actor: { type: 'anonymous' }, outcome: 'failure', requestId, details: { attempts: i } });
    await log.close();
    const written = await tdb.database.db.selectFrom('audit_events').selectAll().where('request_id', '=', requestId).orderBy('id').execute();
    expect(written.map((row) => row.details.attempts)).toEqual([2, 3, 4]);
    const dropped = await tdb.database.db.selectFrom('audit_events').selectAll().where('type', '=', 'audit.dropped').execute();
    expect(dropped.at(-1)!.details).toEqual({ dropped: 2 });
  });
});

describe('a scripted run of the flows', () => {
  const secrets: string[] = [];
  let adminId: string;
  let clientId: string;
  let call: ReturnType<typeof adminClientFor>;
  let refreshError = '';

  it('runs admin changes, token requests, revocations, denials and a registration', async () => {
    const db = tdb.database.db;
    const admin = await adminClient(db);
    adminId = admin.id;
    secrets.push(admin.secret);
    const adminToken = await tokenFor(server.url, admin);
    secrets.push(adminToken);
    call = adminClientFor(server.url, adminToken);

    const identifier = `https://${unique('ledger')}.internal`;
    const apiRes = await call('POST', '/apis', { identifier, scopes: ['read', 'write'] });
    expect(apiRes.status).toBe(201);
    const roleName = unique('clerk');
    expect((await call('POST', '/roles', { name: roleName, grants: [{ api: identifier, scopes: ['read'] }] })).status).toBe(201);
    const created = s.clientWithSecret.parse((await call('POST', '/clients', { name: unique('svc'), roles: [roleName] })).body);
    clientId = created.client.clientId;
    secrets.push(created.clientSecret!);
    const rotated = s.rotatedSecret.parse((await call('POST', `/clients/${clientId}/rotate-secret`, { keepOldForSeconds: 60 })).body);
    secrets.push(rotated.clientSecret);
    const credentials = { id: clientId, secret: rotated.clientSecret };

    // Two tokens issued; refusals: a wrong secret, a scope not granted, a grant it does not have.
    for (let i = 0; i < 2; i += 1) {
      const ok = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, credentials);
      expect(ok.status).toBe(200);
      secrets.push(ok.body.access_token);
    }
    const wrongSecret = 'Wr0ngSecretWr0ngSecretWr0ngSecretWr0ngSecre';
    secrets.push(wrongSecret);
    expect((await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, { id: clientId, secret: wrongSecret })).status).toBe(401);
    expect((await postForm(`${server.url}/token`, { grant_type: 'client_credentials', scope: 'write' }, credentials)).body.error).toBe('invalid_scope');
    const bogusRefresh = 'R3fr3shR3fr3shR3fr3shR3fr3shR3fr3shR3fr3sh1';
    secrets.push(bogusRefresh);
    const refresh = await postForm(`${server.url}/token`, { grant_type: 'refresh_token', refresh_token: bogusRefresh }, credentials);
    expect(refresh.status).toBe(400);
    refreshError = refresh.body.error;

    // Revocation of one of its tokens.
    const revoked = await postForm(`${server.url}/token/revocation`, { token: secrets.at(-3)!, token_type_hint: 'access_token' }, credentials);
    expect(revoked.status).toBe(200);

    // Admin access denied: no token, a bad token, a token without the admin scopes.
    expect((await adminCall(server.url, 'GET', '/apis')).status).toBe(401);
    expect((await adminCall(server.url, 'GET', '/apis', { token: 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln' })).status).toBe(401);
    const reader = await adminClient(db, ['admin:read']);
    secrets.push(reader.secret);
    const readerToken = await tokenFor(server.url, reader);
    secrets.push(readerToken);
    expect((await adminCall(server.url, 'DELETE', `/clients/${clientId}`, { token: readerToken })).status).toBe(403);

    // Self-registration with a token made through the admin API, then RFC 7592 update and delete.
    const made = s.registrationTokenWithValue.parse((await call('POST', '/registration-tokens', { roles: [roleName], maxUses: 1 })).body);
    secrets.push(made.token);
    const register = (token: string) => fetch(`${server.url}/reg`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: unique('self') }),
    });
    const registered = await (await register(made.token)).json() as Record<string, string>;
    secrets.push(registered.client_secret!, registered.registration_access_token!);
    expect((await register(made.token)).status).toBe(401);
    const update = await fetch(registered.registration_client_uri!, {
      method: 'PUT',
      headers: { authorization: `Bearer ${registered.registration_access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: registered.client_id, client_name: unique('self-renamed') }),
    });
    expect(update.status).toBe(200);
    const newRat = (await update.json() as Record<string, string>).registration_access_token!;
    secrets.push(newRat);
    expect((await fetch(registered.registration_client_uri!, { method: 'DELETE', headers: { authorization: `Bearer ${newRat}` } })).status).toBe(204);

    expect((await call('POST', `/clients/${clientId}/revoke-tokens`)).status).toBe(200);
    expect((await call('DELETE', `/roles/${roleName}/clients/${clientId}`)).status).toBe(200);
    await server.app.audit.flush({ counts: true });
  });

  it('recorded the expected events with actor, target, outcome, source address and request id', async () => {
    const all = await rows();
    const of = (type: string) => all.filter((row) => row.type === type);

    const created = of('client.created').find((row) => row.target_id === clientId)!;
    expect(created).toMatchObject({ actor_type: 'client', actor_id: adminId, target_type: 'client', client_id: clientId, outcome: 'success' });
    expect(created.source_address).toMatch(/127\.0\.0\.1/);
    expect(created.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.details).toMatchObject({ grantTypes: ['client_credentials'] });
    for (const type of ['api.created', 'role.created', 'client.secret_rotated', 'client.tokens_revoked', 'role.unassigned', 'registration_token.created']) {
      expect(of(type).some((row) => row.actor_id === adminId), type).toBe(true);
    }

    const failures = of('token.failure').filter((row) => row.client_id === clientId);
    expect(failures.map((row) => row.details.error).sort()).toEqual(['invalid_client', 'invalid_scope', refreshError].sort());
    expect(failures.every((row) => row.outcome === 'failure' && row.actor_type === 'client')).toBe(true);

    const issued = of('token.issued').filter((row) => row.client_id === clientId);
    expect(issued.reduce((sum, row) => sum + Number(row.details.count), 0)).toBe(2);
    expect(of('token.revoked').some((row) => row.actor_id === clientId)).toBe(true);

    const denied = of('admin.access_denied');
    // Without a valid token: counted (no token and a bad one are the same refusal, invalid_token).
    const anonymous = denied.filter((row) => row.actor_type === 'anonymous' && row.details.status === 401);
    expect(anonymous.reduce((sum, row) => sum + Number(row.details.count), 0)).toBe(2);
    expect(denied.find((row) => row.details.status === 403)).toMatchObject({ actor_type: 'client', outcome: 'failure' });

    const registration = of('registration.created').at(-1)!;
    expect(registration.actor_type).toBe('registration_token');
    expect(registration.details.roles).toHaveLength(1);
    expect(of('registration.failure').some((row) => row.details.error === 'invalid_token')).toBe(true);
    expect(of('registration.updated')).toHaveLength(1);
    expect(of('registration.deleted')).toHaveLength(1);
  });

  it('holds none of the secrets or tokens used, in any column', async () => {
    const dump = JSON.stringify(await rows());
    expect(secrets.length).toBeGreaterThan(10);
    for (const secret of secrets) expect(dump, 'a secret reached the audit log').not.toContain(secret);
  });

  it('serves the events through the admin API, filtered and paged', async () => {
    const page = await call('GET', `/audit-events?client=${clientId}&limit=3`);
    expect(page.status).toBe(200);
    const first = s.auditEventPage.parse(page.body);
    expect(first.items).toHaveLength(3);
    expect(first.items.every((event) => event.clientId === clientId || event.actor.id === clientId)).toBe(true);
    // Newest first, and the next page continues where this one ended.
    const ids = first.items.map((event) => Number(event.id));
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    const next = s.auditEventPage.parse((await call('GET', `/audit-events?client=${clientId}&limit=3&cursor=${first.nextCursor}`)).body);
    expect(Number(next.items[0]!.id)).toBeLessThan(ids.at(-1)!);

    const failures = s.auditEventPage.parse((await call('GET', '/audit-events?type=token.failure,admin.*&limit=500')).body);
    expect(new Set(failures.items.map((event) => event.type))).toEqual(new Set(['token.failure', 'admin.access_denied']));
    const byActor = s.auditEventPage.parse((await call('GET', `/audit-events?actor=${adminId}&limit=500`)).body);
    expect(byActor.items.length).toBeGreaterThan(5);
    expect(byActor.items.every((event) => event.actor.id === adminId)).toBe(true);
    const future = new Date(Date.now() + 3600_000).toISOString();
    expect(s.auditEventPage.parse((await call('GET', `/audit-events?since=${encodeURIComponent(future)}`)).body).items).toEqual([]);
    const past = new Date(Date.now() - 3600_000).toISOString();
    expect(s.auditEventPage.parse((await call('GET', `/audit-events?until=${encodeURIComponent(past)}`)).body).items).toEqual([]);
  });

  it('answers bad filters with 400 naming the field, and refuses callers without admin:read', async () => {
    for (const [query, field] of [
      ['type=nope', 'type'], ['cursor=abc', 'cursor'], ['since=yesterday', 'query.since'], ['limit=0', 'query.limit'], ['colour=red', 'query.colour'],
    ]) {
      const res = await call('GET', `/audit-events?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error).toBe('invalid_input');
      expect(res.body.fields).toContain(field);
    }
    expect((await adminCall(server.url, 'GET', '/audit-events')).status).toBe(401);
    const writer = await adminClient(tdb.database.db, ['admin:write']);
    const res = await adminCall(server.url, 'GET', '/audit-events', { token: await tokenFor(server.url, writer) });
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('insufficient_scope');
  });
});
