// The cheapest query that proves the database answers.
import { sql } from 'kysely';
import type { Db } from '../db/tables.ts';

export async function pingDatabase(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}
