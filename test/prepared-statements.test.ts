// The statements a busy server sends many times a second go to Postgres as named prepared
// statements (src/db/prepared.ts): parsed and planned once per connection. Checked on a pool of
// one connection, whose session lists what it has prepared; everything else stays unnamed.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres, type Database } from '../src/db/database.ts';
import { preparedName } from '../src/db/prepared.ts';
import { insertAuditEvents } from '../src/store/audit.ts';
import { claimAssertionIds } from '../src/store/trusted-issuers.ts';
import { createTestDatabase, onPostgres, type TestDatabase } from './support/database.ts';

describe('marked statements', () => {
  it('are named by their leading comment only', () => {
    expect(preparedName('/* prepared:claim_assertion_ids */\n INSERT INTO t VALUES ($1)')).toBe('claim_assertion_ids');
    expect(preparedName('INSERT INTO t VALUES ($1) /* prepared:late */')).toBeUndefined();
    expect(preparedName(' /* prepared:indented */ SELECT 1')).toBeUndefined();
    expect(preparedName('/* prepared:Bad-Name */ SELECT 1')).toBeUndefined();
  });
});

// The embedded database has no named statements to check: it is in-process, with no round trip.
describe.skipIf(!onPostgres)('on Postgres', () => {
  let tdb: TestDatabase;
  let single: Database;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    single = openPostgres(tdb.url!, { poolSize: 1, listen: false });
  });
  afterAll(async () => {
    await single?.close();
    await tdb?.drop();
  });

  it('prepare the jti claims and audit batches once per connection, and nothing else', async () => {
    const expiresAt = new Date(Date.now() + 60_000);
    expect(await claimAssertionIds(single.db, [{ id: 'jti-one', expiresAt }, { id: 'jti-two', expiresAt }])).toEqual(new Set(['jti-one', 'jti-two']));
    // The same statement again, on the same connection: the prepared one runs, a replay is refused.
    expect(await claimAssertionIds(single.db, [{ id: 'jti-two', expiresAt }, { id: 'jti-three', expiresAt }])).toEqual(new Set(['jti-three']));
    await insertAuditEvents(single.db, [{ type: 'token.exchanged', actor_type: 'client', actor_id: 'a', outcome: 'success', details: '{}' }]);
    await insertAuditEvents(single.db, [
      { type: 'token.exchanged', actor_type: 'client', actor_id: 'b', outcome: 'success', details: '{}' },
      { type: 'token.exchanged', actor_type: 'client', actor_id: 'c', outcome: 'success', details: '{}' },
    ]);
    const { rows } = await sql<{ name: string }>`SELECT name FROM pg_prepared_statements ORDER BY name`.execute(single.db);
    expect(rows.map((row) => row.name)).toEqual(['claim_assertion_ids', 'insert_audit_events']);
    const { rows: written } = await sql<{ actor_id: string }>`SELECT actor_id FROM audit_events WHERE type = 'token.exchanged' ORDER BY id`.execute(single.db);
    expect(written.map((row) => row.actor_id)).toEqual(['a', 'b', 'c']);
  });
});
