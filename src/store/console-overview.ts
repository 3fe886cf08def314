// SQL of the console's overview: counts, per-minute series from the audit log's counted rows,
// and the clients worth a warning. Each is one indexed query, whatever the size of the tables.
import { sql } from 'kysely';
import type { Db } from '../db/tables.ts';

export async function countRows(db: Db): Promise<{ apis: number; clients: number; users: number; roles: number }> {
  const { rows } = await sql<{ apis: string; clients: string; users: string; roles: string }>`
    select (select count(*) from apis) as apis, (select count(*) from clients) as clients,
           (select count(*) from users) as users, (select count(*) from roles) as roles`.execute(db);
  const row = rows[0]!;
  return { apis: Number(row.apis), clients: Number(row.clients), users: Number(row.users), roles: Number(row.roles) };
}

export interface MinuteCount { minute: Date; type: string; count: number }

/**
 * Events of `types` per minute since `since`. Counted rows (token.issued, refusals) carry their
 * count in details.count; every other row counts once.
 */
export async function countEventsPerMinute(db: Db, types: readonly string[], since: Date): Promise<MinuteCount[]> {
  const { rows } = await sql<{ minute: Date; type: string; count: string }>`
    select date_trunc('minute', occurred_at) as minute, type,
           sum(case when jsonb_typeof(details->'count') = 'number' then (details->>'count')::bigint else 1 end) as count
    from audit_events
    where occurred_at >= ${since} and type in (${sql.join(types.map((type) => sql`${type}`))})
    group by 1, 2`.execute(db);
  return rows.map((row) => ({ minute: new Date(row.minute), type: row.type, count: Number(row.count) }));
}

/** Clients whose newest live secret is older than `before` (the first `limit` by age, and how many). */
export async function findStaleSecrets(db: Db, before: Date, limit: number): Promise<{ total: number; items: { clientId: string; name: string; since: Date }[] }> {
  // One pass over the secrets, grouped (a hash aggregate), then names for the few shown.
  const { rows } = await sql<{ client_id: string; name: string; since: Date; total: string }>`
    with newest as (
      select client_id, max(created_at) as since from client_secrets
      where expires_at is null or expires_at > now()
      group by client_id having max(created_at) < ${before}
    ), shown as (select client_id, since from newest order by since limit ${limit})
    select c.client_id, c.name, shown.since, (select count(*) from newest) as total
    from shown join clients c on c.client_id = shown.client_id
    order by shown.since`.execute(db);
  return { total: Number(rows[0]?.total ?? 0), items: rows.map((row) => ({ clientId: row.client_id, name: row.name, since: new Date(row.since) })) };
}

/** Enabled clients older than `createdBefore` with no token issued in the audit log (its retention). */
export async function findUnusedClients(db: Db, createdBefore: Date, limit: number): Promise<{ total: number; items: { clientId: string; name: string }[] }> {
  // NOT EXISTS is an anti-join the planner can run as one probe of the (type, client_id) index
  // (migration 0017) per client once the log is long, so the cost follows the number of clients,
  // not the size of the log (with a short log it hashes the index's token.issued entries). NOT IN
  // over the distinct client ids read every token.issued row the log holds, however long.
  const { rows } = await sql<{ client_id: string; name: string; total: string }>`
    select c.client_id, c.name, count(*) over () as total from clients c
    where c.enabled and c.created_at < ${createdBefore}
      and not exists (select 1 from audit_events a where a.type = 'token.issued' and a.client_id = c.client_id)
    order by c.name limit ${limit}`.execute(db);
  return { total: Number(rows[0]?.total ?? 0), items: rows.map((row) => ({ clientId: row.client_id, name: row.name })) };
}
