// Writes that other processes cache: commit, then wait until every live Postern process sharing
// the database has applied the change, so that it holds "at once" everywhere when we return.
import type { Transaction } from 'kysely';
import type { Db, Tables } from '../db/tables.ts';
import { awaitPropagation } from '../store/changes.ts';

export async function writeAndPropagate<T>(
  db: Db,
  work: (trx: Transaction<Tables>) => Promise<T>,
): Promise<T> {
  const result = await db.transaction().execute(work);
  await awaitPropagation(db);
  return result;
}
