// Single use of assertion ids (src/services/assertion-claims.ts): claims of concurrent requests go
// to the database together, and each id is still let in exactly once, within one process and
// across processes (two claimers on one database stand for two processes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AssertionClaims } from '../src/services/assertion-claims.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

let tdb: TestDatabase;
let one: AssertionClaims;
let two: AssertionClaims;
let counter = 0;
const later = () => new Date(Date.now() + 600_000);
const fresh = () => `claim-${process.pid}-${++counter}`;

beforeAll(async () => {
  tdb = await createTestDatabase();
  one = new AssertionClaims(tdb.database.db);
  two = new AssertionClaims(tdb.database.db);
});

afterAll(async () => {
  await tdb?.drop();
});

describe('assertion claims', () => {
  it('let an id in once, then refuse it', async () => {
    const id = fresh();
    expect(await one.claim(id, later())).toBe(true);
    expect(await one.claim(id, later())).toBe(false);
    expect(await two.claim(id, later())).toBe(false);
  });

  it('claim many different ids at once, each of them', async () => {
    const ids = Array.from({ length: 300 }, fresh);
    const results = await Promise.all(ids.map((id, i) => (i % 2 ? one : two).claim(id, later())));
    expect(results.every(Boolean)).toBe(true);
    const stored = await tdb.database.db.selectFrom('used_assertions').select('id').where('id', 'in', ids).execute();
    expect(stored).toHaveLength(300);
  });

  it('let exactly one of many concurrent claims of one id in, in one process and across two', async () => {
    for (let round = 0; round < 5; round += 1) {
      const id = fresh();
      // The first claim goes at once; the others queue behind it and go together, some twice.
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 3 ? one : two).claim(id, later())));
      expect(results.filter(Boolean)).toHaveLength(1);
    }
  });

  it('refuse, in a batch, the ids claimed before and a repeat within it', async () => {
    const used = fresh();
    expect(await two.claim(used, later())).toBe(true);
    const blocker = one.claim(fresh(), later()); // in flight: what follows waits and goes as one batch
    const repeated = fresh();
    const batch = await Promise.all([one.claim(used, later()), one.claim(repeated, later()), one.claim(repeated, later()), one.claim(fresh(), later())]);
    expect(await blocker).toBe(true);
    expect(batch).toEqual([false, true, false, true]);
  });
});
