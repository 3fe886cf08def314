// SQL for the admin console's sessions (migration 0016). Rows are keyed by the hash of the
// session id; the id itself is never stored.
import type { Selectable } from 'kysely';
import type { ConsoleSessionsTable, Db } from '../db/tables.ts';

export type ConsoleSessionRow = Selectable<ConsoleSessionsTable>;

export async function insertConsoleSession(
  db: Db,
  row: { idHash: string; userId: string; csrfSecret: string; expiresAt: Date; now: Date },
): Promise<void> {
  await db.insertInto('console_sessions').values({
    id_hash: row.idHash, user_id: row.userId, csrf_secret: row.csrfSecret,
    created_at: row.now, last_seen_at: row.now, expires_at: row.expiresAt,
  }).execute();
}

/** The session under this hash, unless it has expired or been idle since `idleSince`. */
export async function findLiveConsoleSession(db: Db, idHash: string, now: Date, idleSince: Date): Promise<ConsoleSessionRow | undefined> {
  return db.selectFrom('console_sessions').selectAll()
    .where('id_hash', '=', idHash)
    .where('expires_at', '>', now)
    .where('last_seen_at', '>', idleSince)
    .executeTakeFirst();
}

export async function touchConsoleSession(db: Db, idHash: string, now: Date): Promise<void> {
  await db.updateTable('console_sessions').set({ last_seen_at: now }).where('id_hash', '=', idHash).execute();
}

export async function deleteConsoleSession(db: Db, idHash: string): Promise<void> {
  await db.deleteFrom('console_sessions').where('id_hash', '=', idHash).execute();
}

export async function deleteConsoleSessionsOfUser(db: Db, userId: string): Promise<void> {
  await db.deleteFrom('console_sessions').where('user_id', '=', userId).execute();
}

/** Sessions past their end or idle since `idleSince`: nothing reads them again. */
export async function deleteStaleConsoleSessions(db: Db, now: Date, idleSince: Date): Promise<number> {
  const result = await db.deleteFrom('console_sessions')
    .where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<=', idleSince)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
