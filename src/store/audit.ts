// SQL for the audit log. The table refuses UPDATE and DELETE (migration 0008) except for the
// retention path below, which identifies itself for the length of its transaction.
import { sql, type Insertable, type Selectable } from 'kysely';
import type { AuditEventsTable, Db } from '../db/tables.ts';

export type AuditEventRow = Selectable<AuditEventsTable>;
export type NewAuditEvent = Insertable<AuditEventsTable>;

const COLUMNS = [
  'type', 'actor_type', 'actor_id', 'target_type', 'target_id', 'client_id', 'user_id', 'outcome', 'source_address', 'request_id',
] as const;

/**
 * Appends rows, in their order (their ids follow it). One parameter per column, an array of
 * every row's values, rather than one per value: a batch of hundreds of rows is built, sent and
 * parsed as a short statement.
 */
export async function insertAuditEvents(db: Db, rows: NewAuditEvent[]): Promise<void> {
  if (rows.length === 0) return;
  const text = (column: (typeof COLUMNS)[number]) => rows.map((row) => (row[column] ?? null) as string | null);
  const at = rows.map((row) => (row.occurred_at === undefined ? null : new Date(row.occurred_at).toISOString()));
  const details = rows.map((row) => (typeof row.details === 'string' ? row.details : JSON.stringify(row.details ?? {})));
  await sql`/* prepared:insert_audit_events */
    INSERT INTO audit_events (occurred_at, type, actor_type, actor_id, target_type, target_id, client_id, user_id, outcome, source_address, request_id, details)
    SELECT coalesce(r.occurred_at, now()), r.type, r.actor_type, r.actor_id, r.target_type, r.target_id, r.client_id, r.user_id, r.outcome,
      r.source_address, r.request_id, r.details
    FROM unnest(${at}::timestamptz[], ${text('type')}::text[], ${text('actor_type')}::text[], ${text('actor_id')}::text[],
      ${text('target_type')}::text[], ${text('target_id')}::text[], ${text('client_id')}::text[], ${text('user_id')}::text[],
      ${text('outcome')}::text[], ${text('source_address')}::text[], ${text('request_id')}::text[], ${details}::jsonb[])
      WITH ORDINALITY AS r (occurred_at, type, actor_type, actor_id, target_type, target_id, client_id, user_id, outcome, source_address, request_id, details, position)
    ORDER BY r.position`.execute(db);
}

export interface AuditQuery {
  limit: number;
  /** Keyset paging by id: rows before (newest first) or after (oldest first) this id. */
  beforeId?: string;
  afterId?: string;
  order: 'desc' | 'asc';
  since?: Date;
  until?: Date;
  types?: string[];
  actorId?: string;
  clientId?: string;
  userId?: string;
}

/** One page of events; asks for one row more to tell whether another page follows. */
export async function listAuditEvents(db: Db, query: AuditQuery): Promise<{ rows: AuditEventRow[]; more: boolean }> {
  let select = db.selectFrom('audit_events').selectAll();
  if (query.beforeId !== undefined) select = select.where('id', '<', query.beforeId as never);
  if (query.afterId !== undefined) select = select.where('id', '>', query.afterId as never);
  if (query.since) select = select.where('occurred_at', '>=', query.since);
  if (query.until) select = select.where('occurred_at', '<', query.until);
  if (query.types?.length) select = select.where('type', 'in', query.types);
  if (query.actorId !== undefined) select = select.where('actor_id', '=', query.actorId);
  const { clientId, userId } = query;
  if (clientId !== undefined) {
    select = select.where((eb) => eb.or([
      eb('client_id', '=', clientId),
      eb.and([eb('actor_type', '=', 'client'), eb('actor_id', '=', clientId)]),
      // A person's admin request names in client_id the app they used; the client acted on is
      // the target.
      eb.and([eb('target_type', '=', 'client'), eb('target_id', '=', clientId)]),
    ]));
  }
  if (userId !== undefined) {
    select = select.where((eb) => eb.or([
      eb('user_id', '=', userId),
      eb.and([eb('actor_type', '=', 'user'), eb('actor_id', '=', userId)]),
    ]));
  }
  const rows = await select.orderBy('id', query.order).limit(query.limit + 1).execute();
  return { rows: rows.slice(0, query.limit), more: rows.length > query.limit };
}

/** The retention path: deletes events older than `before`, the only DELETE the table allows. */
export async function deleteAuditEventsBefore(db: Db, before: Date): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config('postern.audit_retention', 'on', true)`.execute(trx);
    const result = await trx.deleteFrom('audit_events').where('occurred_at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  });
}
