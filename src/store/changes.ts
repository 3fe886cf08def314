// SQL of change propagation between processes that share the database (src/propagation/ is the
// only user): NOTIFY of changes and markers, and the registry of caching processes with the
// markers each has acknowledged.
import { sql } from 'kysely';
import { CHANGES_CHANNEL } from '../db/change-feed.ts';
import type { Db } from '../db/tables.ts';

/** A process that has not sent a heartbeat for this long is taken to be gone. */
export const PROCESS_LIVENESS_SECONDS = 15;

/** Publishes `message` (src/propagation/changes.ts), delivered at commit when `db` is a transaction. */
export async function publishChange(db: Db, message: { kind: string; [field: string]: unknown }): Promise<void> {
  await sql`select pg_notify(${CHANGES_CHANNEL}, ${JSON.stringify(message)})`.execute(db);
}

/** Assigns the next marker and publishes it in one statement (its own transaction). */
export async function publishMarker(db: Db): Promise<number> {
  const { rows } = await sql<{ seq: string }>`
    with m as (select nextval('change_markers') as seq)
    select seq, pg_notify(${CHANGES_CHANNEL}, json_build_object('kind', 'marker', 'seq', seq)::text) from m
  `.execute(db);
  return Number(rows[0]!.seq);
}

/** Live processes that have not yet acknowledged `marker`. */
export async function countLaggingProcesses(db: Db, marker: number): Promise<number> {
  const row = await db.selectFrom('server_processes')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('seen_marker', '<', String(marker))
    .where('heartbeat_at', '>', sql<Date>`now() - make_interval(secs => ${PROCESS_LIVENESS_SECONDS})`)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/**
 * Registers a process as having seen every marker assigned so far. Call it before the process
 * starts caching: everything it then loads is newer than those markers' changes.
 */
export async function registerProcess(db: Db, id: string): Promise<void> {
  await sql`
    insert into server_processes (id, seen_marker)
    select ${id}, case when is_called then last_value else 0 end from change_markers
    on conflict (id) do update set seen_marker = excluded.seen_marker, heartbeat_at = now()
  `.execute(db);
}

export async function acknowledgeMarker(db: Db, id: string, marker: number): Promise<void> {
  await db.updateTable('server_processes')
    .set({ seen_marker: sql`greatest(seen_marker, ${marker})`, heartbeat_at: sql`now()` })
    .where('id', '=', id)
    .execute();
}

export async function unregisterProcess(db: Db, id: string): Promise<void> {
  await db.deleteFrom('server_processes').where('id', '=', id).execute();
}

export async function deleteGoneProcesses(db: Db): Promise<number> {
  const result = await db.deleteFrom('server_processes')
    .where('heartbeat_at', '<', sql<Date>`now() - interval '1 hour'`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
