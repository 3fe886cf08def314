// The cheapest query that proves the database answers.
import { sql, type Kysely } from 'kysely';
import type { Tables } from '../db/tables.ts';

export async function pingDatabase(db: Kysely<Tables>): Promise<void> {
  await sql`select 1`.execute(db);
}
