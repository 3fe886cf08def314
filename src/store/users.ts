// SQL for people who sign in through the browser, and their roles.
import { sql, type Selectable } from 'kysely';
import type { Db, UsersTable } from '../db/tables.ts';

export type UserRow = Selectable<UsersTable>;

export async function insertUser(
  db: Db,
  user: { id: string; username: string; email: string | null; name: string | null; passwordHash: string },
): Promise<UserRow> {
  return db.insertInto('users').values({
    id: user.id,
    username: user.username,
    email: user.email,
    name: user.name,
    password_hash: user.passwordHash,
  }).returningAll().executeTakeFirstOrThrow();
}

export async function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Usernames are matched regardless of case (the unique index is on lower(username)). */
export async function findUserByUsername(db: Db, username: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll()
    .where(sql<string>`lower(username)`, '=', username.toLowerCase())
    .executeTakeFirst();
}

export async function listUsers(db: Db): Promise<UserRow[]> {
  return db.selectFrom('users').selectAll().orderBy('username').execute();
}

/** One page of people in username order, after `afterUsername`; one row more tells whether another follows. */
export async function listUsersPage(
  db: Db, query: { limit: number; afterUsername?: string; usernamePrefix?: string; roleId?: string },
): Promise<{ rows: UserRow[]; more: boolean }> {
  let select = db.selectFrom('users').selectAll();
  if (query.afterUsername !== undefined) select = select.where('username', '>', query.afterUsername);
  if (query.usernamePrefix) select = select.where(sql<boolean>`starts_with(username, ${query.usernamePrefix})`);
  if (query.roleId !== undefined) {
    const roleId = query.roleId;
    select = select.where('id', 'in', (eb) => eb.selectFrom('user_roles').select('user_id').where('role_id', '=', roleId));
  }
  const rows = await select.orderBy('username').limit(query.limit + 1).execute();
  return { rows: rows.slice(0, query.limit), more: rows.length > query.limit };
}

export async function updateUser(
  db: Db,
  id: string,
  changes: { email?: string | null; name?: string | null; enabled?: boolean; emailVerified?: boolean },
): Promise<UserRow | undefined> {
  return db.updateTable('users').set({
    ...(changes.email === undefined ? {} : { email: changes.email }),
    ...(changes.name === undefined ? {} : { name: changes.name }),
    ...(changes.enabled === undefined ? {} : { enabled: changes.enabled }),
    ...(changes.emailVerified === undefined ? {} : { email_verified: changes.emailVerified }),
    updated_at: sql<Date>`now()` as never,
  }).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function setPasswordHash(db: Db, id: string, passwordHash: string, changed = true): Promise<void> {
  await db.updateTable('users').set({
    password_hash: passwordHash,
    ...(changed ? { password_changed_at: sql<Date>`now()` as never, updated_at: sql<Date>`now()` as never } : {}),
  }).where('id', '=', id).execute();
}

/** Replaces the hash only if it is still `expected` (a rehash must not undo a password change). */
export async function replacePasswordHash(db: Db, id: string, expected: string, passwordHash: string): Promise<void> {
  await db.updateTable('users').set({ password_hash: passwordHash })
    .where('id', '=', id).where('password_hash', '=', expected).execute();
}

export async function deleteUser(db: Db, id: string): Promise<void> {
  await db.deleteFrom('users').where('id', '=', id).execute();
}

export async function insertUserRole(db: Db, userId: string, roleId: string): Promise<void> {
  await db.insertInto('user_roles').values({ user_id: userId, role_id: roleId })
    .onConflict((oc) => oc.columns(['user_id', 'role_id']).doNothing())
    .execute();
}

export async function deleteUserRole(db: Db, userId: string, roleId: string): Promise<boolean> {
  const result = await db.deleteFrom('user_roles')
    .where('user_id', '=', userId).where('role_id', '=', roleId)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function listRoleNamesOfUser(db: Db, userId: string): Promise<string[]> {
  const rows = await db.selectFrom('user_roles')
    .innerJoin('roles', 'roles.id', 'user_roles.role_id')
    .select('roles.name')
    .where('user_roles.user_id', '=', userId)
    .orderBy('roles.name')
    .execute();
  return rows.map((row) => row.name);
}

export async function listUsernamesOfRole(db: Db, roleId: string): Promise<string[]> {
  const rows = await db.selectFrom('user_roles')
    .innerJoin('users', 'users.id', 'user_roles.user_id')
    .select('users.username')
    .where('user_roles.role_id', '=', roleId)
    .orderBy('users.username')
    .execute();
  return rows.map((row) => row.username);
}

export interface UserGrantRow { role_name: string; identifier: string; scope: string }

/** Every API scope a person's roles grant, with the role that grants it. */
export async function listUserGrants(db: Db, userId: string): Promise<UserGrantRow[]> {
  return db.selectFrom('user_roles')
    .innerJoin('roles', 'roles.id', 'user_roles.role_id')
    .innerJoin('role_scopes', 'role_scopes.role_id', 'roles.id')
    .innerJoin('apis', 'apis.id', 'role_scopes.api_id')
    .select(['roles.name as role_name', 'apis.identifier', 'role_scopes.scope'])
    .where('user_roles.user_id', '=', userId)
    .execute();
}
