// SQL for roles, the scopes they grant and their assignment to clients.
import type { Selectable } from 'kysely';
import type { Db, RolesTable } from '../db/tables.ts';

export type RoleRow = Selectable<RolesTable>;
export interface RoleGrant { api_id: string; identifier: string; scope: string }

export async function insertRole(db: Db, role: { id: string; name: string; description: string | null }): Promise<void> {
  await db.insertInto('roles').values(role).execute();
}

/** Finds a role by id or name. */
export async function findRole(db: Db, ref: string): Promise<RoleRow | undefined> {
  return db.selectFrom('roles').selectAll()
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
    .executeTakeFirst();
}

export async function listRoles(db: Db): Promise<RoleRow[]> {
  return db.selectFrom('roles').selectAll().orderBy('name').execute();
}

/** Every role's grants in one query (for lists of roles). */
export async function listAllRoleGrants(db: Db): Promise<(RoleGrant & { role_id: string })[]> {
  return db.selectFrom('role_scopes')
    .innerJoin('apis', 'apis.id', 'role_scopes.api_id')
    .select(['role_scopes.role_id', 'role_scopes.api_id', 'apis.identifier', 'role_scopes.scope'])
    .orderBy('apis.identifier').orderBy('role_scopes.scope')
    .execute();
}

/** How many clients and people hold each role (two grouped counts, whatever their number). */
export async function countRoleHolders(db: Db): Promise<Map<string, { clients: number; users: number }>> {
  const [clients, users] = await Promise.all([
    db.selectFrom('client_roles').select(['role_id', (eb) => eb.fn.countAll<string>().as('n')]).groupBy('role_id').execute(),
    db.selectFrom('user_roles').select(['role_id', (eb) => eb.fn.countAll<string>().as('n')]).groupBy('role_id').execute(),
  ]);
  const counts = new Map<string, { clients: number; users: number }>();
  const entry = (id: string) => counts.get(id) ?? counts.set(id, { clients: 0, users: 0 }).get(id)!;
  for (const row of clients) entry(row.role_id).clients = Number(row.n);
  for (const row of users) entry(row.role_id).users = Number(row.n);
  return counts;
}

/** How many clients and people hold one role. */
export async function countHoldersOfRole(db: Db, roleId: string): Promise<{ clients: number; users: number }> {
  const [clients, users] = await Promise.all([
    db.selectFrom('client_roles').select((eb) => eb.fn.countAll<string>().as('n')).where('role_id', '=', roleId).executeTakeFirstOrThrow(),
    db.selectFrom('user_roles').select((eb) => eb.fn.countAll<string>().as('n')).where('role_id', '=', roleId).executeTakeFirstOrThrow(),
  ]);
  return { clients: Number(clients.n), users: Number(users.n) };
}

export async function updateRole(
  db: Db,
  id: string,
  changes: { name?: string; description?: string | null },
): Promise<void> {
  if (changes.name === undefined && changes.description === undefined) return;
  await db.updateTable('roles').set({
    ...(changes.name === undefined ? {} : { name: changes.name }),
    ...(changes.description === undefined ? {} : { description: changes.description }),
  }).where('id', '=', id).execute();
}

export async function deleteRole(db: Db, id: string): Promise<void> {
  await db.deleteFrom('roles').where('id', '=', id).execute();
}

export async function insertRoleScopes(db: Db, roleId: string, apiId: string, scopes: readonly string[]): Promise<void> {
  if (scopes.length === 0) return;
  await db.insertInto('role_scopes')
    .values(scopes.map((scope) => ({ role_id: roleId, api_id: apiId, scope })))
    .onConflict((oc) => oc.columns(['role_id', 'api_id', 'scope']).doNothing())
    .execute();
}

export async function deleteRoleScopes(db: Db, roleId: string, apiId: string, scopes: readonly string[]): Promise<void> {
  if (scopes.length === 0) return;
  await db.deleteFrom('role_scopes')
    .where('role_id', '=', roleId).where('api_id', '=', apiId).where('scope', 'in', scopes)
    .execute();
}

export async function listRoleGrants(db: Db, roleId: string): Promise<RoleGrant[]> {
  return db.selectFrom('role_scopes')
    .innerJoin('apis', 'apis.id', 'role_scopes.api_id')
    .select(['role_scopes.api_id', 'apis.identifier', 'role_scopes.scope'])
    .where('role_scopes.role_id', '=', roleId)
    .orderBy('apis.identifier').orderBy('role_scopes.scope')
    .execute();
}

export async function insertClientRole(db: Db, clientId: string, roleId: string): Promise<void> {
  await db.insertInto('client_roles').values({ client_id: clientId, role_id: roleId })
    .onConflict((oc) => oc.columns(['client_id', 'role_id']).doNothing())
    .execute();
}

export async function deleteClientRole(db: Db, clientId: string, roleId: string): Promise<boolean> {
  const result = await db.deleteFrom('client_roles')
    .where('client_id', '=', clientId).where('role_id', '=', roleId)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function listRolesOfClient(db: Db, clientId: string): Promise<RoleRow[]> {
  return db.selectFrom('roles')
    .innerJoin('client_roles', 'client_roles.role_id', 'roles.id')
    .selectAll('roles')
    .where('client_roles.client_id', '=', clientId)
    .orderBy('roles.name')
    .execute();
}

export async function listClientsOfRole(db: Db, roleId: string): Promise<string[]> {
  const rows = await db.selectFrom('client_roles').select('client_id').where('role_id', '=', roleId).execute();
  return rows.map((row) => row.client_id);
}

/** Clients whose roles grant `scope` of the API `apiId`, in name order. */
export async function listClientsGrantedScope(db: Db, apiId: string, scope: string): Promise<string[]> {
  const rows = await db.selectFrom('client_roles')
    .innerJoin('role_scopes', 'role_scopes.role_id', 'client_roles.role_id')
    .innerJoin('clients', 'clients.client_id', 'client_roles.client_id')
    .select('clients.name')
    .distinct()
    .where('role_scopes.api_id', '=', apiId)
    .where('role_scopes.scope', '=', scope)
    .orderBy('clients.name')
    .execute();
  return rows.map((row) => row.name);
}

export interface ClientGrantRow { role_name: string; api_id: string; identifier: string; scope: string }

/** Every scope a client's roles grant, with the role that grants it. */
export async function listClientGrants(db: Db, clientId: string): Promise<ClientGrantRow[]> {
  return db.selectFrom('client_roles')
    .innerJoin('roles', 'roles.id', 'client_roles.role_id')
    .innerJoin('role_scopes', 'role_scopes.role_id', 'roles.id')
    .innerJoin('apis', 'apis.id', 'role_scopes.api_id')
    .select(['roles.name as role_name', 'role_scopes.api_id', 'apis.identifier', 'role_scopes.scope'])
    .where('client_roles.client_id', '=', clientId)
    .execute();
}
