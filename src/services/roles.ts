// Use-cases for roles: named sets of API scopes, assigned to clients and to people.
import { randomId } from '../domain/crypto.ts';
import type { Db } from '../db/tables.ts';
import * as roles from '../store/roles.ts';
import * as users from '../store/users.ts';
import { requireApi } from './apis.ts';
import { requireClient } from './clients.ts';
import { requireUser } from './users.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import { writeAndPropagate, type Change } from '../propagation/index.ts';
import { conflict, invalid, isUniqueViolation, notFound } from './errors.ts';
import { changedFields, checkName, checkScopes } from './validation.ts';

/** Roles' grants and names are what clients' cached grants (and their tokens' roles claim) derive from. */
const CONFIG: Change = { kind: 'config' };

export interface ScopeGrant {
  /** API id, identifier or name. */
  api: string;
  scopes: string[];
}

export interface RoleView {
  id: string;
  name: string;
  description: string | null;
  grants: { api: string; scopes: string[] }[];
  clients: string[];
  /** Usernames of the people holding the role. */
  users: string[];
  createdAt: string;
}

export async function requireRole(db: Db, ref: string): Promise<roles.RoleRow> {
  const role = await roles.findRole(db, ref);
  if (!role) throw notFound(`unknown role "${ref}"`);
  return role;
}

async function toView(db: Db, role: roles.RoleRow): Promise<RoleView> {
  const grants = new Map<string, string[]>();
  for (const grant of await roles.listRoleGrants(db, role.id)) {
    grants.set(grant.identifier, [...(grants.get(grant.identifier) ?? []), grant.scope]);
  }
  return {
    id: role.id,
    name: role.name,
    description: role.description,
    grants: [...grants].map(([api, scopes]) => ({ api, scopes })),
    clients: await roles.listClientsOfRole(db, role.id),
    users: await users.listUsernamesOfRole(db, role.id),
    createdAt: role.created_at.toISOString(),
  };
}

/** Checks that an API defines every scope, and returns its id and the scopes. */
async function resolveGrant(db: Db, grant: ScopeGrant): Promise<{ apiId: string; scopes: string[] }> {
  const api = await requireApi(db, grant.api);
  const scopes = checkScopes(grant.scopes, 'grant');
  if (scopes.length === 0) throw invalid(`name at least one scope of ${api.identifier} to grant`, 'grant');
  const undefinedScopes = scopes.filter((scope) => !api.scopes.includes(scope));
  if (undefinedScopes.length) {
    throw invalid(`API ${api.identifier} does not define ${undefinedScopes.join(', ')}`, 'grant');
  }
  return { apiId: api.id, scopes };
}

export async function createRole(
  db: Db,
  input: { name: string; description?: string; grants?: ScopeGrant[] },
  audit: AuditSink,
): Promise<RoleView> {
  const name = checkName(input.name);
  try {
    const role = await writeAndPropagate(db, CONFIG, async (trx) => {
      const id = randomId('role_');
      await roles.insertRole(trx, { id, name, description: input.description ?? null });
      for (const grant of input.grants ?? []) {
        const { apiId, scopes } = await resolveGrant(trx, grant);
        await roles.insertRoleScopes(trx, id, apiId, scopes);
      }
      return toView(trx, await requireRole(trx, id));
    });
    audit.record({ type: 'role.created', target: { type: 'role', id: role.id }, details: { name, scopes: grantList(role) } });
    return role;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a role named "${name}" already exists`);
    throw error;
  }
}

/** "api scope" pairs, for the audit log. */
const grantList = (role: RoleView) => role.grants.flatMap((g) => g.scopes.map((scope) => `${g.api} ${scope}`));

export async function listRoles(db: Db): Promise<RoleView[]> {
  const rows = await roles.listRoles(db);
  return Promise.all(rows.map((row) => toView(db, row)));
}

/** A role in a list: its grants, and how many clients and people hold it (not who). */
export interface RoleSummary {
  id: string;
  name: string;
  description: string | null;
  grants: { api: string; scopes: string[] }[];
  clients: number;
  users: number;
}

/** Every role, in three queries whatever the number of roles and holders (the console's list). */
export async function listRoleSummaries(db: Db): Promise<RoleSummary[]> {
  const [rows, grantRows, holders] = await Promise.all([roles.listRoles(db), roles.listAllRoleGrants(db), roles.countRoleHolders(db)]);
  const grants = new Map<string, Map<string, string[]>>();
  for (const grant of grantRows) {
    const byApi = grants.get(grant.role_id) ?? grants.set(grant.role_id, new Map()).get(grant.role_id)!;
    byApi.set(grant.identifier, [...(byApi.get(grant.identifier) ?? []), grant.scope]);
  }
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    description: row.description,
    grants: [...(grants.get(row.id) ?? [])].map(([api, scopes]) => ({ api, scopes })),
    clients: holders.get(row.id)?.clients ?? 0,
    users: holders.get(row.id)?.users ?? 0,
  }));
}

export async function getRole(db: Db, ref: string): Promise<RoleView> {
  return toView(db, await requireRole(db, ref));
}

/**
 * One role as in a list: its grants and how many hold it, not who (a role may be held by
 * thousands; listClientsPage and listUsersPage page through them with `role`).
 */
export async function getRoleSummary(db: Db, ref: string): Promise<RoleSummary> {
  const role = await requireRole(db, ref);
  const [grantRows, holders] = await Promise.all([roles.listRoleGrants(db, role.id), roles.countHoldersOfRole(db, role.id)]);
  const grants = new Map<string, string[]>();
  for (const grant of grantRows) grants.set(grant.identifier, [...(grants.get(grant.identifier) ?? []), grant.scope]);
  return {
    id: role.id, name: role.name, description: role.description,
    grants: [...grants].map(([api, scopes]) => ({ api, scopes })), ...holders,
  };
}

export async function updateRole(
  db: Db,
  ref: string,
  input: { name?: string; description?: string | null },
  audit: AuditSink,
): Promise<RoleView> {
  const name = input.name === undefined ? undefined : checkName(input.name);
  try {
    const role = await writeAndPropagate(db, CONFIG, async (trx) => {
      const role = await requireRole(trx, ref);
      await roles.updateRole(trx, role.id, { name, description: input.description });
      return toView(trx, await requireRole(trx, role.id));
    });
    audit.record({ type: 'role.updated', target: { type: 'role', id: role.id }, details: { name: role.name, fields: changedFields(input) } });
    return role;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`a role named "${name}" already exists`);
    throw error;
  }
}

export async function deleteRole(db: Db, ref: string, audit: AuditSink): Promise<RoleView> {
  const view = await writeAndPropagate(db, CONFIG, async (trx) => {
    const role = await requireRole(trx, ref);
    const found = await toView(trx, role);
    await roles.deleteRole(trx, role.id);
    return found;
  });
  audit.record({ type: 'role.deleted', target: { type: 'role', id: view.id }, details: { name: view.name } });
  return view;
}

export async function grantScopes(
  db: Db,
  ref: string,
  grant: ScopeGrant,
  audit: AuditSink,
): Promise<RoleView> {
  let api = '';
  let granted: string[] = [];
  const view = await writeAndPropagate(db, CONFIG, async (trx) => {
    const role = await requireRole(trx, ref);
    const { apiId, scopes } = await resolveGrant(trx, grant);
    await roles.insertRoleScopes(trx, role.id, apiId, scopes);
    api = (await requireApi(trx, apiId)).identifier;
    granted = scopes;
    return toView(trx, role);
  });
  audit.record({ type: 'role.scopes_granted', target: { type: 'role', id: view.id }, details: { name: view.name, api, scopes: granted } });
  return view;
}

export async function ungrantScopes(
  db: Db,
  ref: string,
  grant: ScopeGrant,
  audit: AuditSink,
): Promise<RoleView> {
  let api = '';
  const scopes = checkScopes(grant.scopes, 'grant');
  const view = await writeAndPropagate(db, CONFIG, async (trx) => {
    const role = await requireRole(trx, ref);
    const found = await requireApi(trx, grant.api);
    api = found.identifier;
    await roles.deleteRoleScopes(trx, role.id, found.id, scopes);
    return toView(trx, role);
  });
  audit.record({ type: 'role.scopes_removed', target: { type: 'role', id: view.id }, details: { name: view.name, api, scopes } });
  return view;
}

/**
 * Gives or takes a role of a client, in one transaction, and audits it; every process learns of
 * it before this returns (clients' grants are cached).
 */
async function changeClientRole(
  db: Db,
  refs: { role: string; client: string },
  type: 'role.assigned' | 'role.unassigned',
  audit: AuditSink,
): Promise<RoleView> {
  let clientId = '';
  const view = await writeAndPropagate(db, () => ({ kind: 'client', clientId }), async (trx) => {
    const role = await requireRole(trx, refs.role);
    const client = await requireClient(trx, refs.client);
    clientId = client.client_id;
    if (type === 'role.assigned') {
      await roles.insertClientRole(trx, client.client_id, role.id);
    } else if (!(await roles.deleteClientRole(trx, client.client_id, role.id))) {
      throw notFound(`role "${role.name}" is not assigned to client "${client.name}"`);
    }
    return toView(trx, role);
  });
  audit.record({ type, target: { type: 'client', id: clientId }, details: { role: view.name } });
  return view;
}

export function assignRoleToClient(db: Db, roleRef: string, clientRef: string, audit: AuditSink): Promise<RoleView> {
  return changeClientRole(db, { role: roleRef, client: clientRef }, 'role.assigned', audit);
}

export function unassignRoleFromClient(db: Db, roleRef: string, clientRef: string, audit: AuditSink): Promise<RoleView> {
  return changeClientRole(db, { role: roleRef, client: clientRef }, 'role.unassigned', audit);
}

/**
 * Gives or takes a role of a person, in one transaction, and audits it. People's roles are read
 * when they sign in and when tokens are issued: nothing is cached, so nothing is propagated.
 */
async function changeUserRole(
  db: Db,
  refs: { role: string; user: string },
  type: 'user.role_assigned' | 'user.role_unassigned',
  audit: AuditSink,
): Promise<RoleView> {
  let userId = '';
  const view = await db.transaction().execute(async (trx) => {
    const role = await requireRole(trx, refs.role);
    const user = await requireUser(trx, refs.user);
    userId = user.id;
    if (type === 'user.role_assigned') {
      await users.insertUserRole(trx, user.id, role.id);
    } else if (!(await users.deleteUserRole(trx, user.id, role.id))) {
      throw notFound(`role "${role.name}" is not assigned to user "${user.username}"`);
    }
    return toView(trx, role);
  });
  audit.record({ type, target: { type: 'user', id: userId }, details: { role: view.name } });
  return view;
}

export function assignRoleToUser(db: Db, roleRef: string, userRef: string, audit: AuditSink): Promise<RoleView> {
  return changeUserRole(db, { role: roleRef, user: userRef }, 'user.role_assigned', audit);
}

export function unassignRoleFromUser(db: Db, roleRef: string, userRef: string, audit: AuditSink): Promise<RoleView> {
  return changeUserRole(db, { role: roleRef, user: userRef }, 'user.role_unassigned', audit);
}
