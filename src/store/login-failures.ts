// SQL for failed-login counters, shared by every process (src/services/login-protection.ts).
import { sql, type Selectable } from 'kysely';
import type { Db, LoginFailuresTable } from '../db/tables.ts';

export type LoginFailureRow = Selectable<LoginFailuresTable>;

export async function findLoginFailures(db: Db, keys: readonly string[]): Promise<LoginFailureRow[]> {
  return db.selectFrom('login_failures').selectAll().where('key', 'in', keys).execute();
}

/**
 * Counts one failure at `now`, atomically (concurrent failures all count). A counter whose window
 * has passed and which is not locked starts again at one; reaching `threshold` locks it until
 * `lockoutSeconds` from now. Times are the caller's clock, the one its checks compare them with.
 */
export async function recordLoginFailure(
  db: Db,
  key: string,
  policy: { threshold: number; windowSeconds: number; lockoutSeconds: number },
  now: Date,
): Promise<LoginFailureRow> {
  const at = sql`${now.toISOString()}::timestamptz`;
  const window = sql`make_interval(secs => ${policy.windowSeconds})`;
  const lockout = sql`${at} + make_interval(secs => ${policy.lockoutSeconds})`;
  const stale = sql`(login_failures.first_at < ${at} - ${window}
    and (login_failures.locked_until is null or login_failures.locked_until < ${at}))`;
  const failures = sql`case when ${stale} then 1 else login_failures.failures + 1 end`;
  const { rows } = await sql<LoginFailureRow>`
    insert into login_failures (key, failures, first_at, last_at, locked_until)
    values (${key}, 1, ${at}, ${at}, case when 1 >= ${policy.threshold} then ${lockout} end)
    on conflict (key) do update set
      failures = ${failures},
      first_at = case when ${stale} then ${at} else login_failures.first_at end,
      last_at = ${at},
      locked_until = case when ${failures} >= ${policy.threshold} then ${lockout} else login_failures.locked_until end
    returning *
  `.execute(db);
  return rows[0]!;
}

export async function deleteLoginFailures(db: Db, key: string): Promise<void> {
  await db.deleteFrom('login_failures').where('key', '=', key).execute();
}

export async function deleteStaleLoginFailures(db: Db, windowSeconds: number, now: Date): Promise<number> {
  const at = sql<Date>`${now.toISOString()}::timestamptz`;
  const result = await db.deleteFrom('login_failures')
    .where('last_at', '<', sql<Date>`${at} - make_interval(secs => ${windowSeconds})`)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', at)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
