// Use-cases for administering Postern itself: the admin scopes of the built-in API and the first
// admin client, which the admin API then trusts.
import { randomBytes } from 'node:crypto';
import type { Db } from '../db/tables.ts';
import { ADMIN_READ_SCOPE, ADMIN_WRITE_SCOPE, DEFAULT_ADMIN_NAME, POSTERN_API } from '../domain/postern-api.ts';
import { findClientByName } from '../store/clients.ts';
import { findRole, listClientsGrantedScope } from '../store/roles.ts';
import { requireApi } from './apis.ts';
import { createClient, type ClientWithSecret } from './clients.ts';
import { conflict } from './errors.ts';
import { createRole, grantScopes } from './roles.ts';
import type { AuditSink } from '../domain/audit-events.ts';

export { ADMIN_READ_SCOPE, ADMIN_WRITE_SCOPE, DEFAULT_ADMIN_NAME, POSTERN_API };
export const ADMIN_SCOPES = [ADMIN_READ_SCOPE, ADMIN_WRITE_SCOPE];

export interface BootstrapResult extends ClientWithSecret {
  role: string;
  /** The API to name as `resource` when asking for an admin token. */
  resource: string;
}

/**
 * Creates an admin client holding the admin role (created on first use) with both admin scopes.
 * Refuses when some client already holds admin:write, unless `force`: a second call must not
 * silently mint more admin credentials.
 */
export async function bootstrapAdmin(
  db: Db,
  input: { name?: string; force?: boolean },
  audit: AuditSink,
): Promise<BootstrapResult> {
  const api = await requireApi(db, POSTERN_API);
  const admins = await listClientsGrantedScope(db, api.id, ADMIN_WRITE_SCOPE);
  if (admins.length && !input.force) {
    throw conflict(`an admin client exists already (${admins.join(', ')}); --force creates another`);
  }
  const grant = { api: POSTERN_API, scopes: ADMIN_SCOPES };
  const role = (await findRole(db, DEFAULT_ADMIN_NAME))
    ? await grantScopes(db, DEFAULT_ADMIN_NAME, grant, audit)
    : await createRole(db, { name: DEFAULT_ADMIN_NAME, description: 'Postern administrators', grants: [grant] }, audit);
  let name = input.name ?? DEFAULT_ADMIN_NAME;
  if (input.name === undefined && (await findClientByName(db, name))) {
    // --force without a name: the default one is taken, so make the next one distinct.
    name = `${DEFAULT_ADMIN_NAME}-${randomBytes(3).toString('hex')}`;
  }
  const created = await createClient(db, { name, roles: [role.name] }, audit);
  // A client_secret_basic client always gets a secret.
  return { client: created.client, clientSecret: created.clientSecret!, role: role.name, resource: POSTERN_API };
}
