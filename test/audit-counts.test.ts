// Refusals that anyone can cause without credentials are counted, not written one row each: a
// burst of bad client ids, bad admin tokens or bad registration tokens from one address within
// the interval is one row per kind with its count, and the number of kinds kept is bounded.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../src/services/audit.ts';
import { adminCall } from './support/admin.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
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

const rowsAfter = (id: string) => tdb.database.db.selectFrom('audit_events').selectAll()
  .where('id', '>', id as never).orderBy('id').execute();

async function lastId(): Promise<string> {
  const row = await tdb.database.db.selectFrom('audit_events').select('id').orderBy('id', 'desc').limit(1).executeTakeFirst();
  return String(row?.id ?? 0);
}

describe('refusals of unauthenticated requests', () => {
  it('are one row per kind and source with a count, first and last seen, and no secret', async () => {
    await server.app.audit.flush({ counts: true });
    const since = await lastId();
    const secrets: string[] = [];
    const N = 25;
    for (let i = 0; i < N; i += 1) {
      // Made-up client ids: some could be generated ones, some never could.
      const id = i % 2 ? randomBytes(16).toString('base64url').replace(/^[-_]/, 'a') : `no-such-client-${i}`;
      const secret = randomBytes(32).toString('base64url');
      secrets.push(secret);
      const res = await postForm(`${server.url}/token`, { grant_type: 'client_credentials' }, { id, secret });
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    }
    for (let i = 0; i < N; i += 1) {
      const token = `${randomBytes(24).toString('base64url')}.${i}`;
      secrets.push(token);
      expect((await adminCall(server.url, 'GET', '/apis', { token })).status).toBe(401);
    }
    for (let i = 0; i < N; i += 1) {
      const token = randomBytes(32).toString('base64url');
      secrets.push(token);
      const res = await fetch(`${server.url}/reg`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'x' }),
      });
      expect(res.status).toBe(401);
    }
    // Nothing written per request: the counts wait for the end of their interval.
    await server.app.audit.flush();
    expect(await rowsAfter(since)).toEqual([]);

    await server.app.audit.flush({ counts: true });
    const rows = await rowsAfter(since);
    expect(rows.map((row) => row.type).sort()).toEqual(['admin.access_denied', 'registration.failure', 'token.failure']);
    for (const row of rows) {
      expect(row, row.type).toMatchObject({ actor_type: 'anonymous', actor_id: null, outcome: 'failure', client_id: null });
      expect(row.source_address).toMatch(/127\.0\.0\.1/);
      expect(row.details.count, row.type).toBe(N);
      const first = Date.parse(row.details.firstSeen as string);
      const last = Date.parse(row.details.lastSeen as string);
      expect(first).toBeLessThanOrEqual(last);
      expect(row.occurred_at.getTime()).toBe(first);
    }
    expect(rows.find((row) => row.type === 'token.failure')!.details).toMatchObject({
      error: 'invalid_client', status: 401, route: 'token', grantType: 'client_credentials',
    });
    expect(rows.find((row) => row.type === 'admin.access_denied')!.details).toMatchObject({ reason: 'invalid_token', status: 401 });
    const dump = JSON.stringify(rows);
    for (const secret of secrets) expect(dump, 'a secret reached the audit log').not.toContain(secret);
  });

  it('keep a bounded number of kinds, folding the rest into one row per type', async () => {
    const db = tdb.database.db;
    const since = await lastId();
    const log = new AuditLog(db, { flushIntervalMs: 0, countIntervalMs: 0, maxAggregates: 3 });
    // 10 source addresses, 4 refusals each: 3 keep their own row, 7 are folded into one.
    for (let i = 0; i < 40; i += 1) {
      log.record({
        type: 'token.failure', actor: { type: 'anonymous' }, outcome: 'failure', sourceAddress: `192.0.2.${i % 10}`,
        details: { error: 'invalid_client', status: 401, route: 'token' },
      });
    }
    // Events that are not refusals of the unauthenticated stay rows of their own, past the bound too.
    for (let i = 0; i < 2; i += 1) log.record({ type: 'login.lockout', actor: { type: 'anonymous' }, outcome: 'failure' });
    expect(log.pending).toBe(2 + 3 + 1);
    await log.close();
    const rows = await rowsAfter(since);
    expect(rows.filter((row) => row.type === 'login.lockout')).toHaveLength(2);
    const counted = rows.filter((row) => row.type === 'token.failure');
    expect(counted).toHaveLength(4);
    expect(counted.filter((row) => row.source_address !== null).map((row) => row.details.count)).toEqual([4, 4, 4]);
    expect(counted.find((row) => row.source_address === null)).toMatchObject({
      actor_type: 'anonymous', details: { overflow: true, count: 28 },
    });
  });

  it('are not keyed by what the caller writes: 150 grant types are one row, 500 usernames one row with 10 examples', async () => {
    await server.app.audit.flush({ counts: true });
    const since = await lastId();
    for (let i = 0; i < 150; i += 1) {
      const id = `no-such-client-${i}`;
      const res = await postForm(`${server.url}/token`, { grant_type: `urn:made-up:${i}:${'g'.repeat(i % 40)}` }, { id, secret: 'x' });
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
    await server.app.audit.flush({ counts: true });
    const rows = await rowsAfter(since);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.details).toMatchObject({ grantType: 'other', count: 150 });

    const db = tdb.database.db;
    const before = await lastId();
    const log = new AuditLog(db, { flushIntervalMs: 0, countIntervalMs: 0 });
    for (let i = 0; i < 500; i += 1) {
      log.record({
        type: 'login.failure', actor: { type: 'anonymous' }, outcome: 'failure', sourceAddress: '192.0.2.1', clientId: 'app',
        details: { username: `guess-${i}-${'u'.repeat(200)}` },
      });
    }
    expect(log.pending).toBe(1);
    await log.close();
    const logins = await rowsAfter(before);
    expect(logins).toHaveLength(1);
    expect(logins[0]!.details.count).toBe(500);
    const usernames = logins[0]!.details.usernames as string[];
    expect(usernames).toHaveLength(10);
    expect(usernames[0]).toBe(`guess-0-${'u'.repeat(56)}`);
    expect(logins[0]!.details).not.toHaveProperty('username');
  });

  it('keep at most 100 kinds a server by default, each key part cut to 64 characters, and count the rest', async () => {
    const db = tdb.database.db;
    const since = await lastId();
    const log = new AuditLog(db, { flushIntervalMs: 0, countIntervalMs: 0 });
    for (let i = 0; i < 300; i += 1) {
      log.record({
        type: 'registration.failure', actor: { type: 'anonymous' }, outcome: 'failure', sourceAddress: `2001:db8::${i.toString(16)}`,
        details: { error: `e${i}-${'x'.repeat(300)}`, status: 401, route: 'registration' },
      });
    }
    expect(log.pending).toBe(101);
    await log.close();
    const rows = await rowsAfter(since);
    expect(rows).toHaveLength(101);
    for (const row of rows.filter((r) => !r.details.overflow)) expect((row.details.error as string).length).toBeLessThanOrEqual(64);
    expect(rows.find((row) => row.details.overflow)!.details.count).toBe(200);
  });
});
