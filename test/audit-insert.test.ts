// Audit rows are appended in batches as one short statement (store/audit.ts insertAuditEvents):
// every value comes back as it was given, whatever characters it holds, in the order given.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertAuditEvents, type NewAuditEvent } from '../src/store/audit.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

let tdb: TestDatabase;

beforeAll(async () => {
  tdb = await createTestDatabase();
});

afterAll(async () => {
  await tdb?.drop();
});

const awkward = ['plain', 'with "quotes"', 'back\\slash', '{braces,commas}', 'NULL', '', 'ümlaut and 🎉', 'new\nline', "it's"];

describe('insertAuditEvents', () => {
  it('stores each value as given, nulls as nulls, in order', async () => {
    const at = new Date('2026-12-01T10:00:00.123Z');
    const rows: NewAuditEvent[] = awkward.map((value, i) => ({
      occurred_at: at,
      type: 'token.exchanged',
      actor_type: 'client',
      actor_id: value,
      target_type: i % 2 ? null : 'api',
      target_id: i % 2 ? null : value,
      client_id: value,
      user_id: null,
      outcome: i % 3 ? 'success' : 'failure',
      source_address: i % 2 ? '::1' : null,
      request_id: value,
      details: JSON.stringify({ value, list: [value, i], nested: { deeper: value } }),
    }));
    await insertAuditEvents(tdb.database.db, rows);
    const stored = await tdb.database.db.selectFrom('audit_events').selectAll().where('type', '=', 'token.exchanged').orderBy('id').execute();
    expect(stored).toHaveLength(awkward.length);
    stored.forEach((row, i) => {
      const given = rows[i]!;
      expect(row.occurred_at.toISOString()).toBe(at.toISOString());
      for (const column of ['actor_type', 'actor_id', 'target_type', 'target_id', 'client_id', 'user_id', 'outcome', 'source_address', 'request_id'] as const) {
        expect(row[column], column).toBe(given[column]);
      }
      const details = typeof row.details === 'string' ? JSON.parse(row.details) : row.details;
      expect(details).toEqual({ value: awkward[i], list: [awkward[i], i], nested: { deeper: awkward[i] } });
    });
  });

  it('gives a row without a time the database\'s', async () => {
    const before = Date.now();
    await insertAuditEvents(tdb.database.db, [{ type: 'token.revoked', actor_type: 'system', outcome: 'success', details: '{}' }]);
    const row = await tdb.database.db.selectFrom('audit_events').selectAll().where('type', '=', 'token.revoked').executeTakeFirstOrThrow();
    expect(row.occurred_at.getTime()).toBeGreaterThanOrEqual(before - 5000);
    expect(row.actor_id).toBeNull();
  });
});
