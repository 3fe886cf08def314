// Change propagation between processes that share the database. Writers publish changes with
// NOTIFY inside their transaction (delivered at commit, in commit order); after committing they
// publish a marker and wait until every live caching process has acknowledged it.
import { sql } from 'kysely';
import { CHANGES_CHANNEL } from '../db/change-feed.ts';
import type { Db } from '../db/tables.ts';

export type Change =
  | { kind: 'client'; clientId: string }
  | { kind: 'config' }
  | { kind: 'revoked'; jti: string; exp: number }
  /** Signing keys were added or rescheduled: servers reload their published set. */
  | { kind: 'keys' }
  /** Every change committed before this marker was assigned has been delivered before it. */
  | { kind: 'marker'; seq: number }
  /** A process checking that its own notifications still come back. */
  | { kind: 'ping'; processId: string };

/** A process that has not sent a heartbeat for this long is taken to be gone. */
export const PROCESS_LIVENESS_SECONDS = 15;

export async function publishChange(db: Db, change: Change): Promise<void> {
  await sql`select pg_notify(${CHANGES_CHANNEL}, ${JSON.stringify(change)})`.execute(db);
}

export function parseChange(payload: string): Change | undefined {
  try {
    const value = JSON.parse(payload) as Change;
    return typeof value === 'object' && value && typeof value.kind === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
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

/**
 * Waits until every live caching process has applied the changes this connection committed so
 * far. Resolves false if some process did not confirm within `timeoutMs` (it may be stalled; its
 * heartbeat will lapse and it will stop counting).
 */
export async function awaitPropagation(db: Db, timeoutMs = 3000): Promise<boolean> {
  const marker = await publishMarker(db);
  const deadline = Date.now() + timeoutMs;
  let pause = 1;
  for (;;) {
    if ((await countLaggingProcesses(db, marker)) === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 25);
  }
}
